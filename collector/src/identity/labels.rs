//! Labels granted by the enrollment token (written into the certificate) win over labels an agent's config
//! claims in its hello; each conflict is logged once per host and key.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use tracing::warn;

/// A label the agent claimed differently from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelConflict {
    pub key: String,
    pub claimed: String,
    pub granted: String,
}

/// Overlays the certificate's labels on the hello's. Returns the conflicts (keys whose claimed value
/// differed from the granted one).
pub fn apply_cert_labels(
    hello_labels: &mut BTreeMap<String, String>,
    cert_labels: &BTreeMap<String, String>,
) -> Vec<LabelConflict> {
    let mut conflicts = Vec::new();
    for (key, granted) in cert_labels {
        if let Some(claimed) = hello_labels.insert(key.clone(), granted.clone()) {
            if claimed != *granted {
                conflicts.push(LabelConflict {
                    key: key.clone(),
                    claimed,
                    granted: granted.clone(),
                });
            }
        }
    }
    conflicts
}

/// Remembers which (host, key, claimed value) conflicts were already logged, so a reconnecting agent does
/// not repeat the warning every time.
#[derive(Default)]
pub struct ConflictLog {
    logged: Mutex<HashSet<(String, String, String)>>,
}

impl ConflictLog {
    /// Overlays the certificate labels (see `apply_cert_labels`) and logs conflicts not logged before.
    pub fn apply(
        &self,
        host: &str,
        hello_labels: &mut BTreeMap<String, String>,
        cert_labels: &BTreeMap<String, String>,
    ) -> Vec<LabelConflict> {
        let conflicts = apply_cert_labels(hello_labels, cert_labels);
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        for conflict in &conflicts {
            let key = (host.to_string(), conflict.key.clone(), conflict.claimed.clone());
            if logged.insert(key) {
                warn!(
                    %host, label = %conflict.key, claimed = %conflict.claimed, granted = %conflict.granted,
                    "agent config claims a label its certificate grants differently; using the certificate's \
                     (fix the agent's [labels] or enroll it with another token)"
                );
            }
        }
        conflicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn certificate_labels_win_and_conflicts_are_reported() {
        let mut hello = map(&[("group", "db"), ("zone", "eu-1a"), ("rack", "r7")]);
        let cert = map(&[("group", "web"), ("zone", "eu-1a"), ("tier", "front")]);
        let conflicts = apply_cert_labels(&mut hello, &cert);
        assert_eq!(
            hello,
            map(&[
                ("group", "web"),
                ("zone", "eu-1a"),
                ("rack", "r7"),
                ("tier", "front")
            ])
        );
        assert_eq!(
            conflicts,
            vec![LabelConflict {
                key: "group".to_string(),
                claimed: "db".to_string(),
                granted: "web".to_string()
            }]
        );
    }

    #[test]
    fn a_conflict_is_reported_by_the_log_every_time_but_the_result_is_stable() {
        let log = ConflictLog::default();
        for _ in 0..2 {
            let mut hello = map(&[("group", "db")]);
            let conflicts = log.apply("web-1", &mut hello, &map(&[("group", "web")]));
            assert_eq!(conflicts.len(), 1);
            assert_eq!(hello["group"], "web");
        }
        assert_eq!(log.logged.lock().unwrap().len(), 1);
    }
}
