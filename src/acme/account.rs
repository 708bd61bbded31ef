//! The ACME account: loaded from the cache, or registered (agreeing to the
//! CA's terms of service, with the configured contacts and external
//! account binding) and saved there. An account file that does not parse
//! is moved aside as `account.json.corrupt` and a new account registered:
//! the old one was unusable anyway, and certificates do not depend on it.
//! An account file that cannot be read, or an account that cannot be saved
//! (an unusable cache), does not stop ordering: a new account is used.

use instant_acme::{Account, AccountCredentials, Error, ExternalAccountKey, NewAccount};

use super::cache::{write_atomic, Cache};
use super::client::CaClient;
use super::error::AcmeError;
use crate::config::AcmeSettings;

/// The account for `settings` at its CA; `at` is the key path for logs.
pub(crate) async fn account(
    settings: &AcmeSettings,
    cache: &Cache,
    client: &CaClient,
    at: &str,
) -> Result<Account, AcmeError> {
    let path = cache.account_path();
    let stored = Cache::read(&path).unwrap_or_else(|e| {
        tracing::error!(at, error = %e, "cannot read the cached ACME account; registering a new one");
        None
    });
    if let Some(bytes) = stored {
        match restore(&bytes, client).await {
            Ok(account) => return Ok(account),
            Err(Restore::Failed(e)) => return Err(e),
            Err(Restore::Corrupt(why)) => {
                let aside = cache.set_aside(&path).map_err(AcmeError::Cache)?;
                tracing::error!(
                    at,
                    file = %path.display(),
                    moved_to = %aside.display(),
                    "ACME account key does not parse ({why}); registering a new account"
                );
            }
        }
    }
    register(settings, cache, client, at).await
}

/// Why a stored account could not be used.
enum Restore {
    /// The file is not an account (bad JSON, a key that does not parse).
    Corrupt(String),
    /// The account is fine but the CA could not be asked.
    Failed(AcmeError),
}

/// The account from its stored credentials.
async fn restore(bytes: &[u8], client: &CaClient) -> Result<Account, Restore> {
    let credentials: AccountCredentials =
        serde_json::from_slice(bytes).map_err(|e| Restore::Corrupt(e.to_string()))?;
    let builder = Account::builder_with_http(Box::new(client.clone()));
    match builder.from_credentials(credentials).await {
        Ok(account) => Ok(account),
        Err(Error::KeyRejected | Error::Crypto) => {
            Err(Restore::Corrupt("the key is not a P-256 PKCS#8 key".into()))
        }
        Err(e) => Err(Restore::Failed(e.into())),
    }
}

/// Registers a new account and saves it in the cache.
async fn register(
    settings: &AcmeSettings,
    cache: &Cache,
    client: &CaClient,
    at: &str,
) -> Result<Account, AcmeError> {
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let eab = settings
        .external_account
        .as_ref()
        .map(|e| ExternalAccountKey::new(e.key_id.clone(), &e.hmac_key));
    let builder = Account::builder_with_http(Box::new(client.clone()));
    let (account, credentials) = builder
        .create(&new, settings.directory.clone(), eab.as_ref())
        .await?;
    let json = serde_json::to_vec_pretty(&credentials)
        .map_err(|e| AcmeError::Local(format!("cannot encode the account: {e}")))?;
    let path = cache.account_path();
    tracing::info!(at, account = account.id(), file = %path.display(), "ACME account registered");
    // Kept in memory either way: registering again at every attempt would
    // run into the CA's account limits.
    if let Err(e) = cache.create().and_then(|()| write_atomic(&path, &json)) {
        tracing::error!(at, error = %e, "cannot save the ACME account in the cache; a restart will register another");
    }
    Ok(account)
}
