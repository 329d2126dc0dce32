"""How commands reach a host: SSH (paramiko) or this machine itself."""
