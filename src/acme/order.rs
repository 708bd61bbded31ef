//! One order for one domain (RFC 8555 §7.4): place it, answer its
//! challenge (publish the answer, tell the CA it is ready), wait for the
//! CA's verdict, send a CSR for a fresh P-256 key and fetch the chain. A
//! challenge the CA could not validate is reported with the CA's own
//! problem detail ("Connection refused", "Incorrect validation
//! certificate for tls-alpn-01 challenge", ...).

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use super::cache::Cache;
use super::challenge::{Challenges, Published};
use super::error::{describe, AcmeError};
use crate::config::AcmeChallenge;

/// How the order's state is polled while the CA validates and issues:
/// soon, then less often, for at most two minutes.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// What an order needs besides the account.
#[derive(Debug)]
pub(crate) struct OrderContext<'a> {
    /// How control of the name is proven.
    pub(crate) challenge: AcmeChallenge,
    /// Where answers are published.
    pub(crate) challenges: &'a Arc<Challenges>,
    /// Where answers are shared with replicas.
    pub(crate) cache: &'a Cache,
    /// The key path, for logs.
    pub(crate) at: &'a str,
}

/// Orders a certificate for `domain` (replacing `replaces`, with ARI);
/// returns the new private key and the chain as one PEM text.
pub(crate) async fn order(
    account: &Account,
    domain: &str,
    replaces: Option<CertificateIdentifier<'static>>,
    ctx: &OrderContext<'_>,
) -> Result<String, AcmeError> {
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut new = NewOrder::new(&identifiers);
    if let Some(id) = replaces {
        new = new.replaces(id);
    }
    let mut order = account.new_order(&new).await?;
    let challenge = ctx.challenge.name();
    tracing::info!(
        at = ctx.at,
        domain,
        challenge,
        order = order.url(),
        "ACME order placed"
    );
    let published = answer(&mut order, domain, ctx).await?;
    let verdict = match order.poll_ready(&POLL).await {
        Ok(OrderStatus::Ready) => Ok(()),
        Ok(status) => Err(AcmeError::Refused(format!("the order became {status:?}"))),
        Err(e) => Err(e.into()),
    };
    drop(published);
    if let Err(error) = verdict {
        return Err(challenge_failure(&mut order, domain, ctx, error).await);
    }
    let key = KeyPair::generate().map_err(|e| AcmeError::Local(format!("key: {e}")))?;
    let mut params = CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| AcmeError::Local(format!("CSR: {e}")))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| AcmeError::Local(format!("CSR: {e}")))?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&POLL).await?;
    Ok(format!("{}{chain}", key.serialize_pem()))
}

/// Publishes the answer to each pending authorization's challenge and
/// tells the CA to validate; an authorization already valid (the CA
/// reused an earlier one) needs nothing. The answers stay published until
/// the returned guards are dropped.
async fn answer(
    order: &mut Order,
    domain: &str,
    ctx: &OrderContext<'_>,
) -> Result<Vec<Published>, AcmeError> {
    let mut published = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Refused(format!(
                    "the authorization for {domain} is {other:?}"
                )))
            }
        }
        let kind = match ctx.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let Some(mut challenge) = authorization.challenge(kind) else {
            return Err(AcmeError::Refused(format!(
                "the CA offers no {} challenge for {domain}",
                ctx.challenge.name()
            )));
        };
        let key_authorization = challenge.key_authorization();
        let answer = match ctx.challenge {
            AcmeChallenge::Http01 => Ok(ctx.challenges.publish_http01(
                ctx.cache,
                &challenge.token,
                key_authorization.as_str(),
            )),
            AcmeChallenge::TlsAlpn01 => ctx.challenges.publish_tls_alpn01(
                ctx.cache,
                domain,
                key_authorization.digest().as_ref(),
            ),
        };
        published.push(answer.map_err(AcmeError::Local)?);
        challenge.set_ready().await?;
    }
    Ok(published)
}

/// The CA's reason a challenge of `order` failed, from its
/// authorizations; `fallback` when none says.
async fn challenge_failure(
    order: &mut Order,
    domain: &str,
    ctx: &OrderContext<'_>,
    fallback: AcmeError,
) -> AcmeError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return AcmeError::Challenge {
                domain: domain.to_owned(),
                challenge: ctx.challenge.name(),
                detail: describe(problem),
            };
        }
    }
    fallback
}
