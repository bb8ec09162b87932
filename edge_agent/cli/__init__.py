"""The edge-agent command line: one module per verb, each thin (parse, call, print)."""
