//! The cache directory: what survives a restart, and what replicas sharing
//! one volume share.
//!
//! ```text
//! <cache>/                           created with mode 0700
//!   lock                             held (flock) by the process ordering
//!   challenges/http-01/<token>       key authorizations of pending challenges,
//!   challenges/tls-alpn-01/<domain>  so a replica the CA happens to reach answers
//!   <ca>/account.json                the account at that CA: key and URL
//!   <ca>/<domain>.pem                private key, then the certificate chain
//! ```
//!
//! `<ca>` is the directory URL's host and path (`acme-v02.api.letsencrypt.org-directory`),
//! so switching between staging and production never mixes accounts or
//! certificates. Every file is written whole to a temporary name and
//! renamed, so a reader (or a crash) never sees half a file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::AcmeSettings;

/// The lock file, directly in the cache.
const LOCK_FILE: &str = "lock";

/// The account file, in the CA's directory.
const ACCOUNT_FILE: &str = "account.json";

/// Where pending challenges are shared.
const CHALLENGES_DIR: &str = "challenges";

/// How often a process waiting for another one's order tries the lock.
const LOCK_POLL: Duration = Duration::from_millis(250);

/// Mode of the cache's directories: the account key is in there.
const DIR_MODE: u32 = 0o700;

/// Mode of every file written.
const FILE_MODE: u32 = 0o600;

/// One listener's view of the cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    /// The `cache` key.
    root: PathBuf,
    /// The CA's own directory under it.
    ca: PathBuf,
}

/// The cache lock, held while ordering; released when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    /// Closing the file releases the lock.
    _file: File,
}

impl Cache {
    /// The cache of `settings`.
    pub(crate) fn new(settings: &AcmeSettings) -> Cache {
        Cache {
            ca: settings.cache.join(ca_dir_name(&settings.directory)),
            root: settings.cache.clone(),
        }
    }

    /// The cache directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directories that are missing, with mode 0700.
    pub(crate) fn create(&self) -> Result<(), String> {
        let challenges = self.root.join(CHALLENGES_DIR);
        for dir in [
            self.ca.clone(),
            challenges.join("http-01"),
            challenges.join("tls-alpn-01"),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// A warning when others may read the cache (an existing directory
    /// keeps the mode it had).
    pub(crate) fn exposure(&self) -> Option<String> {
        let mode = fs::metadata(&self.root).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} is readable by other users (mode {:o}) and holds the ACME account key: chmod 700 it",
                self.root.display(),
                mode & 0o777
            )
        })
    }

    /// Where the certificate of `domain` is kept.
    pub(crate) fn cert_path(&self, domain: &str) -> PathBuf {
        self.ca.join(format!("{domain}.pem"))
    }

    /// The account file.
    pub(crate) fn account_path(&self) -> PathBuf {
        self.ca.join(ACCOUNT_FILE)
    }

    /// The file a pending challenge of `kind` for `name` is shared in.
    pub(crate) fn challenge_path(root: &Path, kind: &str, name: &str) -> PathBuf {
        root.join(CHALLENGES_DIR).join(kind).join(name)
    }

    /// The contents of `path`, `None` when it does not exist.
    pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, String> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Moves an unusable account file aside (`account.json.corrupt`), so a
    /// new account can be registered without losing the old file.
    pub(crate) fn set_aside(&self, path: &Path) -> Result<PathBuf, String> {
        let aside = path.with_extension("json.corrupt");
        fs::rename(path, &aside)
            .map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
        Ok(aside)
    }

    /// Takes the cache lock, waiting while another process (or listener)
    /// holds it; the caller bounds the wait.
    pub(crate) async fn lock(&self) -> Result<Lock, String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.root)
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        let path = self.root.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut told = false;
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(fs4::TryLockError::WouldBlock) => {}
                Err(fs4::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()))
                }
            }
            if !told {
                tracing::info!(lock = %path.display(), "another process is ordering; waiting for the ACME cache lock");
                told = true;
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file and a
/// rename, so nobody ever reads half of it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        format!("cannot write {}: {e}", path.display())
    })
}

/// The cache's subdirectory for the CA at `directory`: its host, port and
/// path, with anything but letters, digits, `.` and `-` made a `-`.
fn ca_dir_name(directory: &str) -> String {
    let rest = directory.split_once("://").map_or(directory, |(_, r)| r);
    let name: String = rest
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                true => c,
                false => '-',
            },
        )
        .collect();
    name.trim_matches('-').to_owned()
}

/// Whether the cache directory can be used: it is a writable directory,
/// or it can be created in its nearest existing ancestor. Judged by making
/// (and removing) a probe file, which is what the permissions actually
/// allow; nothing else is changed.
pub(crate) fn usable(root: &Path) -> Result<(), String> {
    let mut dir = root.to_path_buf();
    loop {
        let at = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        };
        match fs::metadata(at) {
            Ok(meta) if meta.is_dir() => {
                return probe(at).map_err(|e| match at == root {
                    true => format!("{}: cannot write in it: {e}", root.display()),
                    false => format!(
                        "{}: cannot be created: cannot write in {}: {e}",
                        root.display(),
                        at.display()
                    ),
                })
            }
            Ok(_) => {
                return Err(format!(
                    "{}: {} is not a directory",
                    root.display(),
                    at.display()
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", root.display())),
        }
        match dir.parent() {
            Some(parent) => dir = parent.to_path_buf(),
            None => return Err(format!("{}: no existing parent directory", root.display())),
        }
    }
}

/// Creates and removes a file in `dir`.
fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(format!(".wsgate-probe-{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    fs::remove_file(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ca_gets_its_own_directory() {
        let names = [
            (
                crate::config::LETS_ENCRYPT,
                "acme-v02.api.letsencrypt.org-directory",
            ),
            (
                crate::config::LETS_ENCRYPT_STAGING,
                "acme-staging-v02.api.letsencrypt.org-directory",
            ),
            ("https://127.0.0.1:14000/dir", "127.0.0.1-14000-dir"),
            ("https://ca.example/../x", "ca.example-..-x"),
        ];
        for (url, name) in names {
            assert_eq!(ca_dir_name(url), name);
        }
    }

    #[test]
    fn usable_judges_the_directory_or_its_nearest_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(usable(tmp.path()).is_ok());
        assert!(usable(&tmp.path().join("a/b/c")).is_ok());
        assert!(!tmp.path().join("a").exists(), "nothing is created");
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        let error = usable(&file.join("acme")).unwrap_err();
        assert!(error.contains("Not a directory"), "{error}");
        let error = usable(&file).unwrap_err();
        assert!(error.contains("is not a directory"), "{error}");
        assert!(
            fs::read_dir(tmp.path()).unwrap().count() == 1,
            "the probe is gone"
        );
    }

    #[test]
    fn files_are_written_whole_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.pem");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
