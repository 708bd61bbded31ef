use super::*;
use crate::config::cluster::Secret;

fn codec(secret: u8, owner: &str, incarnation: u8) -> IdCodec {
    let key = ClusterKey::new(&Secret::new(&[secret; 32]));
    IdCodec::new(key, owner, [incarnation; INCARNATION_LEN])
}

#[test]
fn an_id_names_its_owner_to_every_instance() {
    let (a, b) = (codec(1, "10.0.0.1:9443", 1), codec(1, "10.0.0.2:9443", 2));
    let session = SessionId::random();
    let text = a.spell_id(&session);
    assert!(
        text.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "{text}"
    );
    assert_eq!(a.locate(&text), Located::Here(session));
    let owner = "10.0.0.1:9443".to_string();
    assert_eq!(b.locate(&text), Located::Owner { owner, session });
    assert_ne!(
        a.spell_id(&SessionId::random()),
        text,
        "128 random bits each"
    );
}

#[test]
fn a_restarted_owner_knows_ids_of_its_earlier_run() {
    let session = SessionId::random();
    let text = codec(1, "a:1", 1).spell_id(&session);
    assert_eq!(
        codec(1, "a:1", 2).locate(&text),
        Located::Restarted(session)
    );
}

#[test]
fn every_altered_byte_is_refused() {
    let a = codec(1, "10.0.0.1:9443", 1);
    let bytes = BASE64URL.decode(a.spell_id(&SessionId::random())).unwrap();
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80] {
            let mut altered = bytes.clone();
            altered[i] ^= flip;
            let located = a.locate(&BASE64URL.encode(&altered));
            assert!(
                matches!(located, Located::Forged(_)),
                "byte {i}: {located:?}"
            );
        }
    }
}

#[test]
fn truncated_extended_and_junk_ids_are_refused() {
    let a = codec(1, "10.0.0.1:9443", 1);
    let text = a.spell_id(&SessionId::random());
    for cut in 0..text.len() {
        let located = a.locate(&text[..cut]);
        assert!(
            matches!(located, Located::Forged(_)),
            "cut at {cut}: {located:?}"
        );
    }
    for junk in [
        format!("{text}A"),
        format!("{text}="),
        SessionId::random().to_string(),
        "x".repeat(10_000),
        "é".repeat(40),
    ] {
        assert!(matches!(a.locate(&junk), Located::Forged(_)), "{junk}");
    }
}

#[test]
fn an_id_under_another_secret_names_the_peer_that_disagrees() {
    let text = codec(2, "10.0.0.9:9443", 1).spell_id(&SessionId::random());
    let located = codec(1, "10.0.0.1:9443", 1).locate(&text);
    let owner = "10.0.0.9:9443".to_string();
    assert_eq!(located, Located::Forged(Forgery::ForeignKey { owner }));
}

#[test]
fn a_made_up_mac_is_refused() {
    let a = codec(1, "a:1", 1);
    let mut bytes = BASE64URL.decode(a.spell_id(&SessionId::random())).unwrap();
    let len = bytes.len();
    bytes[len - MAC_LEN..].fill(0);
    let located = a.locate(&BASE64URL.encode(&bytes));
    assert_eq!(located, Located::Forged(Forgery::BadMac));
}
