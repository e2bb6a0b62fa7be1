//! Broker simulators (placeholder; being written).
