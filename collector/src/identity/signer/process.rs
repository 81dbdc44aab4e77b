//! The two ends of the signer: [`run_signer`] (the `headroom-collector signer` command, on pipes or a Unix
//! socket) and [`Signer`] (what `serve` holds: a child on pipes, or a socket path).

use super::{read_frame, serve_requests, write_frame, SignReply, SignRequest, SignerHello};
use std::io::{BufReader, BufWriter};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long one exchange with a signer on a socket may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a certificate was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The signer looked at the request and said no; the message is for the requester.
    #[error("{0}")]
    Refused(String),
    /// The signer could not be reached or failed; the message names it and the fix.
    #[error("signer: {0}")]
    Unavailable(String),
}

/// The signer as `serve` sees it. `serve` never reads the CA key; only the signer process does.
pub enum Signer {
    /// A child process on a pair of pipes, started again if it dies.
    Child {
        program: PathBuf,
        state_dir: PathBuf,
        pipes: Mutex<Option<ChildPipes>>,
    },
    /// A signer run by its own unit, listening on this Unix socket.
    Socket(PathBuf),
    /// The key in this process: only the enrollment server's unit tests, never `serve`.
    #[cfg(test)]
    InProcess(headroom_common::pki::CertAndKey),
}

/// A running child signer.
pub struct ChildPipes {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Drop for ChildPipes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unavailable(what: impl std::fmt::Display) -> SignerError {
    SignerError::Unavailable(what.to_string())
}

fn start_child(program: &Path, state_dir: &Path) -> Result<(ChildPipes, String), SignerError> {
    let mut child = Command::new(program)
        .arg("signer")
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| unavailable(format!("cannot start {} signer: {error}", program.display())))?;
    let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(unavailable("the signer's pipes are missing"));
    };
    let mut pipes = ChildPipes {
        child,
        input: BufWriter::new(input),
        output: BufReader::new(output),
    };
    match read_frame::<SignerHello>(&mut pipes.output) {
        Ok(Some(hello)) => Ok((pipes, hello.ca_pem)),
        Ok(None) | Err(_) => {
            let status = pipes.child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(unavailable(format!(
                "the signer stopped at start ({status}); its error is logged above (it reads pki/ca.key in {})",
                state_dir.display()
            )))
        }
    }
}

fn exchange(
    input: &mut impl std::io::Write,
    output: &mut impl std::io::Read,
    request: &SignRequest,
) -> Result<String, SignerError> {
    write_frame(input, request).map_err(unavailable)?;
    match read_frame::<SignReply>(output).map_err(unavailable)? {
        Some(SignReply::Signed { cert_pem }) => Ok(cert_pem),
        Some(SignReply::Refused { message }) => Err(SignerError::Refused(message)),
        None => Err(unavailable("the signer closed the connection")),
    }
}

impl Signer {
    /// Starts `program signer --state-dir STATE_DIR` as a child and waits for its hello; returns the signer and
    /// the CA certificate it signs with.
    pub fn spawn(program: &Path, state_dir: &Path) -> Result<(Signer, String), SignerError> {
        let (pipes, ca_pem) = start_child(program, state_dir)?;
        let signer = Signer::Child {
            program: program.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            pipes: Mutex::new(Some(pipes)),
        };
        Ok((signer, ca_pem))
    }

    /// Connects once to a signer on `socket` to learn its CA certificate.
    pub fn connect(socket: &Path) -> Result<(Signer, String), SignerError> {
        let mut stream = open_socket(socket)?;
        match read_frame::<SignerHello>(&mut stream) {
            Ok(Some(hello)) => Ok((Signer::Socket(socket.to_path_buf()), hello.ca_pem)),
            _ => Err(unavailable(format!(
                "{} did not greet (is headroom-collector-signer running? see identity.signer_socket)",
                socket.display()
            ))),
        }
    }

    /// Signs one certificate. A child that died is started again once.
    pub fn sign(&self, request: &SignRequest) -> Result<String, SignerError> {
        match self {
            Signer::Child {
                program,
                state_dir,
                pipes,
            } => {
                let mut pipes = pipes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                for attempt in 0..2 {
                    if pipes.is_none() {
                        *pipes = Some(start_child(program, state_dir)?.0);
                    }
                    let Some(running) = pipes.as_mut() else { break };
                    match exchange(&mut running.input, &mut running.output, request) {
                        Err(SignerError::Unavailable(detail)) if attempt == 0 => {
                            tracing::warn!(%detail, "the signer failed; starting it again");
                            *pipes = None;
                        }
                        other => return other,
                    }
                }
                Err(unavailable("the signer failed twice in a row"))
            }
            Signer::Socket(path) => {
                let mut stream = open_socket(path)?;
                read_frame::<SignerHello>(&mut stream).map_err(unavailable)?;
                let mut output = stream.try_clone().map_err(unavailable)?;
                exchange(&mut stream, &mut output, request)
            }
            #[cfg(test)]
            Signer::InProcess(ca) => {
                super::check_and_sign(ca, request, SystemTime::now()).map_err(SignerError::Refused)
            }
        }
    }
}

fn open_socket(path: &Path) -> Result<UnixStream, SignerError> {
    let stream = UnixStream::connect(path).map_err(|error| {
        unavailable(format!(
            "cannot connect to {}: {error} (start headroom-collector-signer, or unset identity.signer_socket)",
            path.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(SOCKET_TIMEOUT))
        .map_err(unavailable)?;
    stream
        .set_write_timeout(Some(SOCKET_TIMEOUT))
        .map_err(unavailable)?;
    Ok(stream)
}

/// `headroom-collector signer`: reads the CA from `pki_dir`, then signs for `serve` on stdin/stdout (a
/// child, ending when `serve` closes the pipe) or, with `socket`, for every connection to that Unix socket.
pub fn run_signer(pki_dir: &Path, socket: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    // Not dumpable: a process of the same user (the collector) can neither ptrace this one nor read its
    // memory through /proc, where the key lives from here on.
    // SAFETY: prctl with integer arguments only; it changes flags of this process.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let ca = crate::identity::pki_cli::load_ca(pki_dir)?;
    let hello = SignerHello {
        ca_pem: ca.cert_pem.clone(),
    };
    match socket {
        None => {
            // A child ends with its parent even if the pipe were somehow kept open.
            // SAFETY: as above.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            }
            let mut input = std::io::stdin().lock();
            let mut output = BufWriter::new(std::io::stdout().lock());
            write_frame(&mut output, &hello)?;
            serve_requests(&ca, &mut input, &mut output, SystemTime::now)?;
            Ok(())
        }
        Some(path) => {
            // A socket left by a previous run is replaced; any other file there is an error.
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the old socket {}", path.display()))?;
            }
            let listener = listen_with_mode(path, 0o660)?;
            tracing::info!(socket = %path.display(), "signer listening");
            // Under its own unit (Type=notify) the collector is started once the socket is there.
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "signer accept failed");
                        continue;
                    }
                };
                let _ = stream.set_read_timeout(Some(SOCKET_TIMEOUT));
                let _ = stream.set_write_timeout(Some(SOCKET_TIMEOUT));
                let served = stream.try_clone().and_then(|mut input| {
                    let mut output = BufWriter::new(stream);
                    write_frame(&mut output, &hello)?;
                    serve_requests(&ca, &mut input, &mut output, SystemTime::now)
                });
                if let Err(error) = served {
                    tracing::warn!(%error, "signer connection ended with an error");
                }
            }
            Ok(())
        }
    }
}

/// Listens on `path` with the given mode. The socket is bound under a temporary name in the same directory,
/// given its mode, and renamed into place, so that the path never exists with the process's default mode
/// (a client polling for the path sees it only once it is final).
fn listen_with_mode(path: &Path, mode: u32) -> anyhow::Result<UnixListener> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .with_context(|| format!("the signer socket {} has no file name", path.display()))?;
    let mut staged = name.to_os_string();
    staged.push(format!(".{}.binding", std::process::id()));
    let staged = path.with_file_name(staged);
    // A staged socket of a previous run with this pid would stop the bind.
    let _ = std::fs::remove_file(&staged);
    let listener = UnixListener::bind(&staged).with_context(|| {
        format!(
            "cannot listen on {} (check the directory and its permissions)",
            path.display()
        )
    })?;
    let placed = std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", staged.display()))
        .and_then(|()| {
            std::fs::rename(&staged, path)
                .with_context(|| format!("moving the socket into place at {}", path.display()))
        });
    if let Err(error) = placed {
        let _ = std::fs::remove_file(&staged);
        return Err(error);
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_socket_appears_with_its_mode_and_accepts_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.sock");
        let listener = listen_with_mode(&path, 0o660).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("signer.sock")]);
        // The renamed path still reaches the listener.
        let _client = UnixStream::connect(&path).unwrap();
        let (_server, _) = listener.accept().unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_bound_in_is_one_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("signer.sock");
        let error = format!("{:#}", listen_with_mode(&path, 0o660).unwrap_err());
        assert!(error.contains("missing/signer.sock"), "{error}");
    }
}
