"""lifecycle_trace: record, rebuild, check and export the lifecycle of minivllm requests."""
