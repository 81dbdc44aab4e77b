//! Which labels a host gets: they come from its certificate. When the certificate carries labels (granted by
//! the enrollment token), the hello's are ignored; when it carries none (`cert issue`), only the hello's keys
//! in the collector's allow-list (`identity.hello_label_keys`) are kept. What was ignored is logged once per
//! host, so a reconnecting agent does not repeat the warning.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use tracing::warn;

/// Where a host's labels came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// The certificate's labels; the hello's were ignored.
    Certificate,
    /// The hello's labels whose keys are in the allow-list.
    AllowList,
}

/// The labels a host gets, and the hello labels left out (key and claimed value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLabels {
    pub labels: BTreeMap<String, String>,
    pub source: LabelSource,
    pub ignored: Vec<(String, String)>,
}

/// Pure: the labels of a host whose certificate grants `cert_labels` and whose hello claims `hello_labels`.
pub fn resolve_labels(
    hello_labels: &BTreeMap<String, String>,
    cert_labels: &BTreeMap<String, String>,
    allowed_keys: &[String],
) -> ResolvedLabels {
    if !cert_labels.is_empty() {
        let ignored = hello_labels
            .iter()
            .filter(|(key, value)| cert_labels.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        return ResolvedLabels {
            labels: cert_labels.clone(),
            source: LabelSource::Certificate,
            ignored,
        };
    }
    let (labels, ignored): (BTreeMap<_, _>, BTreeMap<_, _>) = hello_labels
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .partition(|(key, _)| allowed_keys.iter().any(|allowed| allowed == key));
    ResolvedLabels {
        labels,
        source: LabelSource::AllowList,
        ignored: ignored.into_iter().collect(),
    }
}

/// A host and the labels of its hello that were ignored.
type IgnoredSet = (String, Vec<(String, String)>);

/// Remembers for which hosts ignored labels were logged.
#[derive(Default)]
pub struct IgnoredLabelLog {
    logged: Mutex<HashSet<IgnoredSet>>,
}

impl IgnoredLabelLog {
    /// Resolves the labels (see `resolve_labels`) and logs what was ignored, once per host and set. The
    /// hello must have been validated already: its values end up in the log.
    pub fn resolve(
        &self,
        host: &str,
        hello_labels: &BTreeMap<String, String>,
        cert_labels: &BTreeMap<String, String>,
        allowed_keys: &[String],
    ) -> ResolvedLabels {
        let resolved = resolve_labels(hello_labels, cert_labels, allowed_keys);
        if resolved.ignored.is_empty() {
            return resolved;
        }
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.insert((host.to_string(), resolved.ignored.clone())) {
            let ignored: Vec<String> = resolved.ignored.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let ignored = ignored.join(",");
            match resolved.source {
                LabelSource::Certificate => warn!(
                    %host, %ignored,
                    "agent config claims labels its certificate does not grant; using the certificate's \
                     (fix the agent's [labels], or enroll it with a token that grants them)"
                ),
                LabelSource::AllowList => warn!(
                    %host, %ignored, allowed = %allowed_keys.join(","),
                    "agent labels whose keys are not in identity.hello_label_keys are dropped (add the keys \
                     there, or enroll the host with a token that grants the labels)"
                ),
            }
        }
        resolved
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

    fn allowed() -> Vec<String> {
        vec!["group".to_string(), "zone".to_string()]
    }

    /// Issue 11: when the certificate carries labels, the hello's are ignored entirely (not merged).
    #[test]
    fn issue_11_certificate_labels_replace_the_hello_labels() {
        let hello = map(&[("group", "db"), ("zone", "eu-1a"), ("rack", "r7")]);
        let cert = map(&[("group", "web"), ("zone", "eu-1a")]);
        let resolved = resolve_labels(&hello, &cert, &allowed());
        assert_eq!(resolved.labels, cert);
        assert_eq!(resolved.source, LabelSource::Certificate);
        assert_eq!(
            resolved.ignored,
            vec![
                ("group".to_string(), "db".to_string()),
                ("rack".to_string(), "r7".to_string())
            ]
        );
    }

    /// Issue 11: without certificate labels, only allow-listed keys of the hello are kept.
    #[test]
    fn issue_11_without_certificate_labels_only_allowed_keys_are_kept() {
        let hello = map(&[("group", "db"), ("zone", "eu-1a"), ("owner", "mallory")]);
        let resolved = resolve_labels(&hello, &BTreeMap::new(), &allowed());
        assert_eq!(resolved.labels, map(&[("group", "db"), ("zone", "eu-1a")]));
        assert_eq!(resolved.source, LabelSource::AllowList);
        assert_eq!(
            resolved.ignored,
            vec![("owner".to_string(), "mallory".to_string())]
        );
        assert!(resolve_labels(&hello, &BTreeMap::new(), &[]).labels.is_empty());
    }

    #[test]
    fn ignored_labels_are_logged_once_per_host_and_set() {
        let log = IgnoredLabelLog::default();
        for _ in 0..2 {
            let resolved = log.resolve("web-1", &map(&[("group", "db")]), &map(&[("group", "web")]), &[]);
            assert_eq!(resolved.labels["group"], "web");
        }
        log.resolve("web-1", &map(&[("group", "db")]), &BTreeMap::new(), &[]);
        assert_eq!(
            log.logged.lock().unwrap().len(),
            1,
            "the same ignored set is one entry"
        );
    }
}
