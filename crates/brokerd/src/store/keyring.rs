//! The keys the store reads with: the current key, which encrypts every
//! write, and the keys a rotation is moving away from or towards, accepted
//! for reading only. Rows name their key by id, so the ring is keyed by id.

use std::sync::Arc;

use super::crypto::EncryptionKey;

/// The current key plus keys accepted for reading. Immutable: the store
/// swaps in a whole new ring, so a reader never sees half a rotation.
#[derive(Debug)]
pub struct KeyRing {
    current: Arc<EncryptionKey>,
    readable: Vec<Arc<EncryptionKey>>,
}

impl KeyRing {
    /// A ring of one key.
    pub fn new(current: EncryptionKey) -> Self {
        Self {
            current: Arc::new(current),
            readable: Vec::new(),
        }
    }

    /// The key every write is encrypted with.
    pub fn current(&self) -> &Arc<EncryptionKey> {
        &self.current
    }

    /// The key with id `id`, current or readable.
    pub fn get(&self, id: &str) -> Option<&EncryptionKey> {
        std::iter::once(&self.current)
            .chain(&self.readable)
            .find(|k| k.id() == id)
            .map(Arc::as_ref)
    }

    /// Every key id, the current one first (for messages).
    pub fn ids(&self) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(&self.readable)
            .map(|k| k.id().to_string())
            .collect()
    }

    /// This ring with `key` accepted for reading too.
    pub(crate) fn accepting(&self, key: Arc<EncryptionKey>) -> Self {
        let mut readable = self.readable.clone();
        if self.get(key.id()).is_none() {
            readable.push(key);
        }
        Self {
            current: Arc::clone(&self.current),
            readable,
        }
    }

    /// This ring with `key` as the current key; the old current key stays
    /// readable until the rotation has finished on disk too.
    pub(crate) fn switched_to(&self, key: Arc<EncryptionKey>) -> Self {
        let mut readable: Vec<_> = std::iter::once(&self.current)
            .chain(&self.readable)
            .filter(|k| k.id() != key.id())
            .cloned()
            .collect();
        readable.dedup_by(|a, b| a.id() == b.id());
        Self {
            current: key,
            readable,
        }
    }

    /// This ring without its readable keys: a finished rotation leaves no
    /// row under them, and a key kept in memory for nothing is a key that
    /// can leak for nothing.
    pub(crate) fn current_only(&self) -> Self {
        Self {
            current: Arc::clone(&self.current),
            readable: Vec::new(),
        }
    }
}
