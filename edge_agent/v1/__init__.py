"""Generated wire contract (edge_agent.v1): run `make proto` after editing proto/edge_agent/v1/agent.proto."""
