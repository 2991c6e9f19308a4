use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let fixtures: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/wallet/fixtures.json"
    ))
    .unwrap();
    let pem = match name {
        "trusted" => fixtures["trusted"][0].as_str().unwrap().to_string(),
        _ => fixtures[name].as_str().unwrap().to_string(),
    };
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA (self-signed) and a leaf it issued, as DER.
fn ca_and_leaf() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Access CA");
    let ca_cert = ca.clone().self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["gateway.example".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = ca.self_signed(&other_key).unwrap();
    (
        leaf.der().to_vec(),
        ca_cert.der().to_vec(),
        other.der().to_vec(),
    )
}

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_780_315_200)
}

#[test]
fn a_trusted_issuer_s_subject_key_identifier_is_read() {
    assert_eq!(
        subject_key_id(&fixture("trusted"))
            .map(|k| hex(&k))
            .as_deref(),
        Some("3c6643471c0c3c0797a57bbec68793cecd76fa10")
    );
    assert_eq!(
        subject_key_id(&fixture("intermediate"))
            .map(|k| hex(&k))
            .as_deref(),
        Some("cce4313edc33abfea0ab41229ce5fe3a69e43229")
    );
    assert_eq!(subject_key_id(b"junk"), None);
}

#[test]
fn a_self_signed_leaf_is_refused_and_a_self_signed_last_is_not_sent() {
    let (leaf, ca, other) = ca_and_leaf();
    assert_eq!(
        checked_chain(std::slice::from_ref(&ca), now()),
        Err(BadChain::SelfSignedLeaf)
    );
    assert_eq!(
        checked_chain(&[leaf.clone(), ca.clone()], now()),
        Ok(vec![leaf.clone()])
    );
    assert_eq!(
        checked_chain(std::slice::from_ref(&leaf), now()),
        Ok(vec![leaf.clone()])
    );
    assert_eq!(
        checked_chain(&[leaf.clone(), other], now()),
        Err(BadChain::Unverified)
    );
    assert_eq!(
        checked_chain(&[ca, leaf], now()),
        Err(BadChain::SelfSignedLeaf)
    );
    assert_eq!(checked_chain(&[], now()), Err(BadChain::Unreadable));
}

#[test]
fn a_root_names_itself_as_its_issuer_and_an_intermediate_does_not() {
    assert_eq!(self_issued(&fixture("trusted")), Ok(true));
    assert_eq!(self_issued(&fixture("intermediate")), Ok(false));
    assert_eq!(self_issued(b"junk"), Err(BadChain::Unreadable));
}
