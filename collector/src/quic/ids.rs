//! The connection IDs the collector issues: 12 bytes, 8 of them random and 4 a tag keyed from the server's
//! private key, so that a restarted collector recognises the IDs of the process before it (and answers their
//! packets with a stateless reset) while a made-up ID fails the check.
//!
//! Why not quinn's `HashedConnectionIdGenerator`: its IDs have 3 random bytes (16.7 million values). A
//! Retry's source ID is drawn without a look at those in use, and the client's next Initial is addressed to
//! it; when it equals an ID of one of the ~100,000 in use at 20,000 agents (several each), that Initial is
//! routed to the other connection and dropped, every retransmission too, and the handshake times out on the
//! agent after 10 s. That happened to 24-33 agents in every storm of 20,000 (`bench/RESULTS.md`). With 8
//! random bytes the chance is about 10^-14 an attempt.

use quinn_proto::{ConnectionId, ConnectionIdGenerator, InvalidCid};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::time::Duration;

/// Random bytes of an ID.
pub const NONCE_LEN: usize = 8;
/// Bytes of its keyed tag.
pub const TAG_LEN: usize = 4;
/// The whole ID.
pub const ID_LEN: usize = NONCE_LEN + TAG_LEN;

/// Issues and checks the collector's connection IDs under one key.
pub struct KeyedIds {
    key: hmac::Key,
    random: SystemRandom,
}

impl KeyedIds {
    /// IDs tagged under `key` (derived from the server's private key: the same in every process that serves
    /// with it).
    pub fn new(key: &[u8]) -> KeyedIds {
        KeyedIds {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            random: SystemRandom::new(),
        }
    }

    fn tag(&self, nonce: &[u8]) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.key, nonce);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }
}

impl ConnectionIdGenerator for KeyedIds {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut id = [0u8; ID_LEN];
        // The system's generator fails only where no kernel source exists at all; a zero nonce still gives a
        // valid, tagged ID, and this endpoint refuses to reuse an ID in use.
        let _ = self.random.fill(&mut id[..NONCE_LEN]);
        let tag = self.tag(&id[..NONCE_LEN]);
        id[NONCE_LEN..].copy_from_slice(&tag);
        ConnectionId::new(&id)
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        if cid.len() != ID_LEN {
            return Err(InvalidCid);
        }
        let expected = self.tag(&cid[..NONCE_LEN]);
        // Compared in full whatever the first difference, so the time taken tells nothing about the tag.
        if headroom_common::pki::constant_time_eq(&expected, &cid[NONCE_LEN..]) {
            Ok(())
        } else {
            Err(InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        ID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn issue_12_ids_carry_a_tag_only_the_same_key_accepts() {
        let mut ids = KeyedIds::new(b"one key");
        let restarted = KeyedIds::new(b"one key");
        let other = KeyedIds::new(b"another key");
        for _ in 0..100 {
            let id = ids.generate_cid();
            assert_eq!(id.len(), ID_LEN);
            assert!(ids.validate(&id).is_ok());
            assert!(
                restarted.validate(&id).is_ok(),
                "a restarted process knows its IDs"
            );
            assert!(other.validate(&id).is_err());
            let mut forged = [0u8; ID_LEN];
            forged.copy_from_slice(&id);
            forged[ID_LEN - 1] ^= 1;
            assert!(
                ids.validate(&ConnectionId::new(&forged)).is_err(),
                "a changed tag fails"
            );
            forged = [0u8; ID_LEN];
            forged.copy_from_slice(&id);
            forged[0] ^= 1;
            assert!(
                ids.validate(&ConnectionId::new(&forged)).is_err(),
                "a changed nonce fails"
            );
        }
        assert!(
            ids.validate(&ConnectionId::new(&[7u8; 8])).is_err(),
            "another length fails"
        );
    }

    /// The storm's lost handshakes came from IDs drawn twice among those in use: 200,000 IDs (twice what
    /// 20,000 agents hold) must all differ. quinn's hashed IDs (3 random bytes) repeat ~1,200 times here.
    #[test]
    fn issue_12_two_hundred_thousand_ids_never_repeat() {
        let mut ids = KeyedIds::new(b"key");
        let mut seen = HashSet::new();
        for _ in 0..200_000 {
            assert!(seen.insert(ids.generate_cid()), "an ID came twice");
        }
        let mut hashed = quinn_proto::HashedConnectionIdGenerator::from_key(7);
        let repeats = (0..200_000)
            .filter(|_| !seen.insert(hashed.generate_cid()))
            .count();
        assert!(repeats > 100, "quinn's hashed IDs repeated {repeats} times");
    }
}
