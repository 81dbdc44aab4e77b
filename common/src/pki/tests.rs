//! Tests of the private CA: names, files and modes, certificates, requests and fingerprints.

use super::inspect::to_hex;
use super::issue::{unix_seconds, SERIAL_LEN_BYTES};
use super::pem::first_cert_der;
use super::*;
use rcgen::KeyPair;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn accepts_and_rejects_host_names() {
    for good in ["web-17.eu-1a", "a", "db01", "x.y.z", &"a".repeat(63)] {
        assert!(validate_host_name(good).is_ok(), "{good:?} should be accepted");
    }
    let too_long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".");
    assert_eq!(too_long.len(), 254);
    let long_label = "a".repeat(64);
    for bad in [
        "",
        "Web",
        "a b",
        "../x",
        ".a",
        "a.",
        "a..b",
        "-a",
        "a-",
        "a_b",
        &too_long,
        &long_label,
    ] {
        assert!(validate_host_name(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn uppercase_host_name_error_suggests_lowercase() {
    let message = validate_host_name("Web").unwrap_err().to_string();
    assert!(message.contains("\"web\""), "{message}");
}

#[test]
fn private_pem_is_0600_and_public_pem_is_0644() {
    let dir = tempfile::tempdir().unwrap();
    let ca = create_ca("test ca", now(), 30).unwrap();
    let key_path = dir.path().join("ca.key");
    let cert_path = dir.path().join("ca.crt");
    write_private_pem(&key_path, &ca.key_pem).unwrap();
    write_public_pem(&cert_path, &ca.cert_pem).unwrap();
    assert_eq!(mode_of(&key_path), 0o600);
    assert_eq!(mode_of(&cert_path), 0o644);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), ca.key_pem);
    assert_eq!(
        read_pem(&cert_path, "the CA certificate", "").unwrap(),
        ca.cert_pem
    );
    // No temporary file is left beside the written ones.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn rewriting_a_key_replaces_it_and_keeps_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_private_pem(&path, "new").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn write_into_missing_directory_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("ca.key");
    let message = write_private_pem(&path, "x").unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("writing {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn read_pem_errors_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ca.key");
    let fix = "run \"headroom-collector ca init\" first";
    let message = read_pem(&missing, "the CA key", fix).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "reading {}: No such file or directory (run \"headroom-collector ca init\" first)",
            missing.display()
        )
    );
    let not_pem = dir.path().join("empty.key");
    std::fs::write(&not_pem, "").unwrap();
    let message = read_pem(&not_pem, "the CA key", fix).unwrap_err().to_string();
    assert!(
        message.contains("empty.key: no PEM block found, expected the CA key"),
        "{message}"
    );
}

#[test]
fn fingerprint_is_sha256_of_the_der() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let fingerprint = fingerprint_sha256(&ca.cert_pem).unwrap();
    let hex = fingerprint.strip_prefix("SHA256:").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{hex}");
    let der = first_cert_der(&ca.cert_pem).unwrap();
    let expected = ring::digest::digest(&ring::digest::SHA256, &der);
    assert_eq!(hex, to_hex(expected.as_ref()));
    let other = create_ca("test ca", now(), 30).unwrap();
    assert_ne!(fingerprint, fingerprint_sha256(&other.cert_pem).unwrap());
    assert!(fingerprint_sha256("not a certificate").is_err());
}

#[test]
fn cert_info_round_trip() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let validity = Duration::from_secs(7 * 86_400);
    let client = issue_client_cert(&ca, "web-17.eu-1a", now(), validity).unwrap();
    let info = cert_info(&client.cert_pem).unwrap();
    let now_s = unix_seconds(now()).unwrap();
    assert_eq!(info.not_after_s, now_s + 7 * 86_400);
    assert_eq!(info.not_before_s, now_s - NOT_BEFORE_BACKDATE.as_secs() as i64);
    assert_eq!(info.issued_s(), now_s);
    assert_eq!(info.dns_names, vec!["web-17.eu-1a".to_string()]);
    assert_eq!(info.serial_hex.len(), 2 * SERIAL_LEN_BYTES, "{}", info.serial_hex);

    // A certificate of seconds is backdated by a tenth of its life, so renewal is not due at once.
    let short = issue_client_cert(&ca, "web-17.eu-1a", now(), Duration::from_secs(30)).unwrap();
    let short_info = cert_info(&short.cert_pem).unwrap();
    assert_eq!(short_info.not_before_s, now_s - 3);
    assert_eq!(short_info.issued_s(), now_s);
    assert!(matches!(
        crate::enroll::renewal_state(short_info.not_before_s, short_info.not_after_s, now_s),
        crate::enroll::RenewalState::NotYet { .. }
    ));

    let ca_info = cert_info(&ca.cert_pem).unwrap();
    assert_eq!(ca_info.not_after_s, now_s + 30 * 86_400);
    assert!(ca_info.dns_names.is_empty());
    assert_ne!(ca_info.serial_hex, info.serial_hex);
}

#[test]
fn serials_are_random() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let serial = |host: &str| {
        let cert = issue_client_cert(&ca, host, now(), Duration::from_secs(86_400)).unwrap();
        cert_info(&cert.cert_pem).unwrap().serial_hex
    };
    // The same subject issued twice must still get two serials.
    assert_ne!(serial("web-1"), serial("web-1"));
}

#[test]
fn server_cert_has_dns_and_ip_names() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let names = vec![
        "collector.example".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let server = issue_server_cert(&ca, &names, now(), Duration::from_secs(86_400)).unwrap();
    let der = first_cert_der(&server.cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let rendered: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(rendered.len(), 3, "{rendered:?}");
    assert_eq!(
        cert_info(&server.cert_pem).unwrap().dns_names,
        vec!["collector.example".to_string()]
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
}

#[test]
fn server_cert_needs_a_valid_name() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let day = Duration::from_secs(86_400);
    assert!(matches!(
        issue_server_cert(&ca, &[], now(), day),
        Err(PkiError::NoServerNames)
    ));
    let bad = vec!["Collector".to_string()];
    assert!(matches!(
        issue_server_cert(&ca, &bad, now(), day),
        Err(PkiError::InvalidHostName { .. })
    ));
}

#[test]
fn client_cert_refuses_an_invalid_host() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let result = issue_client_cert(&ca, "../x", now(), Duration::from_secs(86_400));
    assert!(matches!(result, Err(PkiError::InvalidHostName { .. })));
}

#[test]
fn issuing_with_a_foreign_ca_key_is_refused() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let other = create_ca("other ca", now(), 30).unwrap();
    let mixed = CertAndKey {
        cert_pem: ca.cert_pem.clone(),
        key_pem: other.key_pem,
    };
    let result = issue_client_cert(&mixed, "web-1", now(), Duration::from_secs(86_400));
    assert!(matches!(result, Err(PkiError::CaKeyMismatch)), "{result:?}");
}

#[test]
fn a_leaf_cannot_act_as_ca() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let leaf = issue_client_cert(&ca, "web-1", now(), Duration::from_secs(86_400)).unwrap();
    let result = issue_client_cert(&leaf, "web-2", now(), Duration::from_secs(86_400));
    assert!(matches!(result, Err(PkiError::BadCa(_))), "{result:?}");
}

#[test]
fn debug_output_hides_the_key() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
}

#[test]
fn csr_signing_takes_the_key_from_the_request_and_names_from_the_caller() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let key = generate_key_pem().unwrap();
    // The request asks for another name; only its public key is used.
    let csr = create_csr(&key, "evil-host").unwrap();
    verify_csr(&csr).unwrap();
    let labels = BTreeMap::from([
        ("group".to_string(), "web".to_string()),
        ("zone".to_string(), "eu-1a".to_string()),
    ]);
    let pem = sign_csr(&ca, &csr, "web-1", &labels, now(), Duration::from_secs(3600)).unwrap();
    let der = first_cert_der(&pem).unwrap();
    assert_eq!(cert_info(&pem).unwrap().dns_names, vec!["web-1".to_string()]);
    assert_eq!(labels_from_cert(&der).unwrap(), labels);
    assert_eq!(
        serial_from_cert(&der).unwrap(),
        cert_info(&pem).unwrap().serial_hex
    );
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let request_key = KeyPair::from_pem(&key).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        request_key.public_key_raw()
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.is_ca());
}

#[test]
fn tampered_requests_and_bad_labels_are_refused() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let key = generate_key_pem().unwrap();
    let mut csr = create_csr(&key, "web-1").unwrap();
    let middle = csr.len() / 2;
    csr[middle] ^= 0x01;
    assert!(matches!(verify_csr(&csr), Err(PkiError::BadRequest(_))));
    let good = create_csr(&key, "web-1").unwrap();
    let bad_labels = BTreeMap::from([("group".to_string(), "a=b".to_string())]);
    let result = sign_csr(&ca, &good, "web-1", &bad_labels, now(), Duration::from_secs(60));
    assert!(matches!(result, Err(PkiError::InvalidLabel { .. })), "{result:?}");
    let result = sign_csr(
        &ca,
        &good,
        "Web 1",
        &BTreeMap::new(),
        now(),
        Duration::from_secs(60),
    );
    assert!(
        matches!(result, Err(PkiError::InvalidHostName { .. })),
        "{result:?}"
    );
}

#[test]
fn certificates_without_label_uris_have_no_labels() {
    let ca = create_ca("test ca", now(), 30).unwrap();
    let client = issue_client_cert(&ca, "web-1", now(), Duration::from_secs(60)).unwrap();
    let der = first_cert_der(&client.cert_pem).unwrap();
    assert!(labels_from_cert(&der).unwrap().is_empty());
}

#[test]
fn fingerprints_are_normalised() {
    let canonical = format!("SHA256:{}", "ab".repeat(32));
    let with_colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
    for typed in [
        canonical.clone(),
        "ab".repeat(32),
        format!("sha256:{}", "AB".repeat(32)),
        format!("SHA256:{}", with_colons.join(":")),
    ] {
        assert_eq!(parse_fingerprint(&typed).unwrap(), canonical, "{typed}");
    }
    for bad in ["", "SHA256:abc", &format!("SHA256:{}", "zz".repeat(32))] {
        assert!(
            matches!(parse_fingerprint(bad), Err(PkiError::BadFingerprint(_))),
            "{bad}"
        );
    }
    let ca = create_ca("test ca", now(), 30).unwrap();
    let der = first_cert_der(&ca.cert_pem).unwrap();
    assert_eq!(fingerprint_der(&der), fingerprint_sha256(&ca.cert_pem).unwrap());
}
