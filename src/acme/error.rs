//! Why an ACME attempt failed, worded for the operator: the CA's own
//! problem document (type, detail, subproblems) when it sent one, else what
//! came back or why nothing did. Every failure is retried with back-off, so
//! the message only has to say what to fix.

use instant_acme::{Error, Problem};

use super::client::NotAcme;

/// A failed ACME attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    /// The CA could not be reached, or its TLS was not trusted.
    #[error("cannot reach the CA: {0}")]
    Unreachable(String),
    /// The CA answered with an error or something that is not ACME.
    #[error("the CA refused: {0}")]
    Refused(String),
    /// The CA could not validate the challenge; `detail` is its problem.
    #[error("the CA could not validate {challenge} for {domain}: {detail}")]
    Challenge {
        /// The name being validated.
        domain: String,
        /// `tls-alpn-01` or `http-01`.
        challenge: &'static str,
        /// The CA's problem detail.
        detail: String,
    },
    /// The cache directory could not be read or written.
    #[error("cache: {0}")]
    Cache(String),
    /// Something on our side (a key or a CSR that could not be made).
    #[error("{0}")]
    Local(String),
}

impl From<Error> for AcmeError {
    fn from(error: Error) -> Self {
        match error {
            Error::Api(problem) => AcmeError::Refused(describe(&problem)),
            Error::Json(e) => AcmeError::Refused(format!(
                "its answer is not the JSON ACME expects ({e}); is `directory` an ACME directory URL?"
            )),
            Error::Timeout(_) => {
                AcmeError::Refused("the order did not progress in time (still pending)".into())
            }
            Error::Unsupported(what) => AcmeError::Refused(format!("the CA does not support {what}")),
            Error::Other(e) if e.is::<NotAcme>() => AcmeError::Refused(e.to_string()),
            Error::Other(e) => AcmeError::Unreachable(chain(e.as_ref())),
            e @ (Error::Http(_) | Error::InvalidUri(_)) => AcmeError::Local(e.to_string()),
            e => AcmeError::Refused(e.to_string()),
        }
    }
}

/// The CA's problem document in one line: detail, type, subproblems.
pub(crate) fn describe(problem: &Problem) -> String {
    let mut text = problem
        .detail
        .clone()
        .unwrap_or_else(|| "no detail given".into());
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    for sub in &problem.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}

/// An error and its sources, `outer: inner: innermost`.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(&format!(": {line}"));
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_reads_as_detail_type_and_subproblems() {
        let problem: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Error creating new order",
                "subproblems":[{"type":"urn:ietf:params:acme:error:malformed","detail":"bad name",
                "identifier":{"type":"dns","value":"x.invalid"}}]}"#,
        )
        .unwrap();
        let text = AcmeError::from(Error::Api(problem)).to_string();
        assert!(text.starts_with("the CA refused: Error creating new order (urn:ietf:params:acme:error:rejectedIdentifier)"), "{text}");
        assert!(
            text.contains("x.invalid") && text.contains("bad name"),
            "{text}"
        );
    }

    #[test]
    fn garbage_instead_of_json_says_so() {
        let json = serde_json::from_str::<Problem>("<html>").unwrap_err();
        let text = AcmeError::from(Error::Json(json)).to_string();
        assert!(text.contains("not the JSON ACME expects"), "{text}");
    }
}
