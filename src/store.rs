//! Encrypted session store (placeholder; being written).
