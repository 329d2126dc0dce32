"""`wgconsole trace`: a client's packets followed across the LBs and the gateways, live.

Above the poll (the fleet it resolves the client from, the captures) and the prober (the
mac1 check); both front ends, the command line and the console, run a `TraceSession`.
"""
