"""Table rows for the console, built from a snapshot: text, tone and sort value per cell.

Everything a view shows in a table is decided here, outside the UI, so that the words
and tones agree across views and the work can run in the poll worker: the UI only diffs
these rows into its tables. Rows are keyed by identity (real server address, peer
public key, host name, connection 4-tuple), which is what keeps the cursor in place, and
carry their subject (wgconsole.view.subjects): what the console acts on when one is selected.

`cells` (a row, its cells, the sort keys), `selection` (sorting, filtering, windows), and one
module per table family: `clients`, `overview`, `connections`, `detail_tables`.
"""
