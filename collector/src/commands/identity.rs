//! The identity commands: `ca init`, `cert issue|server|list|revoke`, `token create|list` and `signer`.

use super::support::{now_s, state_dir, Failure};
use crate::cli::{CaCommand, CertCommand, PlaceArgs, TokenCommand};
use headroom_collector::config;
use headroom_collector::identity::{self, pki_cli};
use headroom_collector::views::admin::{render_certs, render_tokens};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub(crate) fn ca(command: CaCommand) -> Result<(), Failure> {
    match command {
        CaCommand::Init {
            place,
            server_names,
            force,
        } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let outcome =
                pki_cli::ca_init(&dir, &server_names, force, SystemTime::now()).map_err(|e| match e {
                    pki_cli::PkiCommandError::Exists(_) => Failure::Usage(e.to_string()),
                    other => Failure::Runtime(other.into()),
                })?;
            println!(
                "created CA and server certificate ({}) in {}",
                server_names.join(", "),
                outcome.dir.display()
            );
            println!("CA fingerprint: {}", outcome.fingerprint);
        }
    }
    Ok(())
}

pub(crate) fn cert(command: CertCommand) -> Result<(), Failure> {
    match command {
        CertCommand::Issue {
            place,
            host,
            out,
            days,
        } => {
            if let Err(error) = headroom_common::pki::validate_host_name(&host) {
                return Err(Failure::Usage(error.to_string()));
            }
            // Capped like certificates issued at enrollment: a certificate nobody renews should not outlive
            // the longest identity.cert_validity.
            let max_days = config::CERT_VALIDITY_MAX.as_secs() / 86_400;
            if days == 0 || u64::from(days) > max_days {
                return Err(Failure::Usage(format!(
                        "cert issue: --days {days} is outside 1..={max_days} (the longest identity.cert_validity); \
                         issue a shorter certificate and renew it"
                    )));
            }
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let ca = pki_cli::load_ca(&dir)?;
            let out = out.unwrap_or_else(|| PathBuf::from(&host));
            let validity = Duration::from_secs(u64::from(days) * 86_400);
            pki_cli::cert_issue_recorded(&dir, &ca, &host, &out, validity, SystemTime::now())?;
            println!(
                "issued a certificate for {host} valid {days} days: {}/agent.pem, agent.key, ca.pem",
                out.display()
            );
            println!(
                "copy the three files into the agent's state directory (/var/lib/headroom-agent/) over a"
            );
            println!("secure channel; agent.key is the host's private key (mode 0600).");
        }
        CertCommand::Server {
            place,
            server_names,
            days,
        } => {
            if days == 0 {
                return Err(Failure::Usage("--days must be at least 1".to_string()));
            }
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let validity = Duration::from_secs(u64::from(days) * 86_400);
            let serial = pki_cli::server_cert_renew(&dir, &server_names, validity, SystemTime::now())
                .map_err(|e| match e {
                    pki_cli::PkiCommandError::Pki(headroom_common::pki::PkiError::InvalidHostName {
                        ..
                    }) => Failure::Usage(e.to_string()),
                    other => Failure::Runtime(other.into()),
                })?;
            println!(
                "new server certificate {serial} ({}) valid {days} days in {}",
                server_names.join(", "),
                dir.display()
            );
            println!("a running collector loads it within seconds, or at once on SIGHUP; agent connections stay up");
        }
        CertCommand::List { place, output } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let certs = identity::admin::cert_rows(&dir, now_s()).map_err(admin_failure)?;
            print!("{}", render_certs(&certs, output.output()));
        }
        CertCommand::Revoke { place, host, serial } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let text = identity::admin::cert_revoke(&dir, host.as_deref(), serial.as_deref(), now_s())
                .map_err(admin_failure)?;
            print!("{text}");
        }
    }
    Ok(())
}

pub(crate) fn token(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Create {
            place,
            ttl,
            uses,
            labels,
            host,
        } => {
            let labels = identity::admin::parse_labels(&labels).map_err(admin_failure)?;
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            let text = identity::admin::token_create(&dir, ttl_s, uses, labels, host, now_s())
                .map_err(admin_failure)?;
            print!("{text}");
        }
        TokenCommand::List { place, output } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let tokens = identity::admin::token_rows(&dir, now_s()).map_err(admin_failure)?;
            print!("{}", render_tokens(&tokens, output.output()));
        }
    }
    Ok(())
}

/// The signer: the only process that reads the CA key.
pub(crate) fn signer(place: PlaceArgs, socket: Option<PathBuf>) -> Result<(), Failure> {
    let dir = pki_cli::pki_dir(&state_dir(&place)?);
    headroom_collector::identity::signer::run_signer(&dir, socket.as_deref())?;
    Ok(())
}

fn admin_failure(error: headroom_collector::identity::admin::AdminError) -> Failure {
    match error {
        headroom_collector::identity::admin::AdminError::Usage(message) => Failure::Usage(message),
        other => Failure::Runtime(other.into()),
    }
}
