use super::*;

/// A CA's key and self-signed certificate.
fn ca() -> (rcgen::KeyPair, rcgen::Certificate) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Access CA");
    let cert = params.self_signed(&key).unwrap();
    (key, cert)
}

/// A P-256 key (PKCS#8 PEM) and a chain for `names`: a leaf issued by a
/// CA, then the CA's self-signed certificate.
fn access(names: &[&str]) -> (String, String) {
    let (ca_key, ca) = ca();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (key.serialize_pem(), format!("{}{}", cert.pem(), ca.pem()))
}

fn issuer() -> String {
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/wallet/fixtures.json")).unwrap();
    fixtures["trusted"][0].as_str().unwrap().to_string()
}

fn table(key: &str, chain: &str, extra: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(&format!(
        "client_id_prefix = \"x509_hash\"\n{extra}\n\
         [[credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\nvct = [\"urn:eudi:pid:1\"]\n\
         claims = [\"family_name\", \"birthdate\"]\n"
    ))
    .unwrap();
    t.insert("signing_key".into(), key.into());
    t.insert("certificate_chain".into(), chain.into());
    if !t.contains_key("trusted_issuers") {
        t.insert("trusted_issuers".into(), vec![issuer()].into());
    }
    t
}

fn problem(t: toml::Table, public_url: &str) -> String {
    load_wallet(t, "acme.toml", public_url)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_good_section_reads_with_its_defaults_and_the_leaf_s_hash_as_client_id() {
    let (key, chain) = access(&["gateway.example"]);
    let w = load_wallet(
        table(&key, &chain, ""),
        "acme.toml",
        "https://gateway.example",
    )
    .unwrap();
    assert_eq!(w.link_ttl, Duration::from_secs(300));
    assert!(w.status_lists);
    assert_eq!(w.invalid_answer, InvalidAnswer::Redirect);
    let der = certificate_chain(&chain).unwrap();
    let want = format!("x509_hash:{}", to_b64url(&Sha256::digest(&der[0])));
    assert_eq!(w.client_id, want);
    assert_eq!(w.credential(None).unwrap().id, "pid");
    assert!(w.credential(Some("mdl")).is_none());
    let mut t = table(&key, &chain, "");
    t.insert("client_id_prefix".into(), "x509_san_dns".into());
    let w = load_wallet(t, "acme.toml", "https://gateway.example").unwrap();
    assert_eq!(w.client_id, "x509_san_dns:gateway.example");
}

#[test]
fn invalid_answer_is_redirect_or_error() {
    let (key, chain) = access(&["gateway.example"]);
    let url = "https://gateway.example";
    for (extra, want) in [
        ("invalid_answer = \"redirect\"", InvalidAnswer::Redirect),
        ("invalid_answer = \"error\"", InvalidAnswer::Error),
    ] {
        let w = load_wallet(table(&key, &chain, extra), "acme.toml", url).unwrap();
        assert_eq!(w.invalid_answer, want, "{extra}");
    }
    let e = problem(table(&key, &chain, "invalid_answer = \"Error\""), url);
    assert!(
        e.contains("wallet.invalid_answer") && e.contains("\"error\""),
        "{e}"
    );
}

#[test]
fn an_address_host_needs_the_address_in_the_san_and_cannot_be_san_dns() {
    let (key, chain) = access(&["127.0.0.1"]);
    assert!(load_wallet(
        table(&key, &chain, ""),
        "acme.toml",
        "http://127.0.0.1:8080"
    )
    .is_ok());
    let mut t = table(&key, &chain, "");
    t.insert("client_id_prefix".into(), "x509_san_dns".into());
    assert!(problem(t, "http://127.0.0.1:8080").contains("wallet.client_id_prefix"));
}

#[test]
fn each_bad_key_is_named_and_no_key_value_is_in_the_error() {
    let (key, chain) = access(&["gateway.example"]);
    let url = "https://gateway.example";
    // Another host, another key.
    let e = problem(table(&key, &chain, ""), "https://other.example");
    assert!(
        e.contains("wallet.certificate_chain") && e.contains("other.example"),
        "{e}"
    );
    let (other_key, _) = access(&["gateway.example"]);
    let e = problem(table(&other_key, &chain, ""), url);
    assert!(
        e.contains("wallet.certificate_chain") && e.contains("signing_key"),
        "{e}"
    );
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    let e = problem(table("not a key", &chain, ""), url);
    assert!(
        e.contains("wallet.signing_key") && !e.contains("not a key"),
        "{e}"
    );
    assert!(problem(table(&key, "junk", ""), url).contains("wallet.certificate_chain"));
    let e = problem(table(&key, &chain, "trusted_issuers = []"), url);
    assert!(e.contains("wallet.trusted_issuers"), "{e}");
    let e = problem(table(&key, &chain, "trusted_issuers = [\"junk\"]"), url);
    assert!(e.contains("wallet.trusted_issuers[0]"), "{e}");
    for (extra, named) in [
        ("link_ttl = \"59s\"", "wallet.link_ttl"),
        ("link_ttl = \"31m\"", "wallet.link_ttl"),
        ("surprise = 1", "surprise"),
        ("status_lists = \"yes\"", "wallet.status_lists"),
        ("invalid_answer = \"400\"", "wallet.invalid_answer"),
        ("invalid_answer = true", "wallet.invalid_answer"),
    ] {
        let e = problem(table(&key, &chain, extra), url);
        assert!(e.contains(named), "{extra}: {e}");
    }
    let mut t = table(&key, &chain, "");
    t.insert("client_id_prefix".into(), "did".into());
    assert!(problem(t, url).contains("wallet.client_id_prefix"));
}

#[test]
fn each_bad_credential_is_named_and_an_mdoc_needs_its_doctype_and_namespace() {
    let (key, chain) = access(&["gateway.example"]);
    let url = "https://gateway.example";
    let with = |credentials: &str| {
        let mut t = table(&key, &chain, "");
        let c: toml::Table = toml::from_str(credentials).unwrap();
        t.insert("credentials".into(), c["credentials"].clone());
        problem(t, url)
    };
    let pid = "format = \"dc+sd-jwt\"\nvct = [\"urn:eudi:pid:1\"]\nclaims = [\"family_name\"]";
    let e = with(&format!("[[credentials]]\nid = \"p-1\"\n{pid}"));
    assert!(e.contains("wallet.credentials[0].id"), "{e}");
    let e = with(&format!(
        "[[credentials]]\nid = \"p\"\n{pid}\n[[credentials]]\nid = \"p\"\n{pid}"
    ));
    assert!(e.contains("wallet.credentials[1].id"), "{e}");
    let e = with("[[credentials]]\nid = \"p\"\nformat = \"jwt_vc\"\nclaims = [\"a\"]");
    assert!(e.contains("wallet.credentials[0].format"), "{e}");
    let e = with("[[credentials]]\nid = \"p\"\nformat = \"dc+sd-jwt\"\nclaims = [\"a\"]");
    assert!(e.contains("wallet.credentials[0].vct"), "{e}");
    let e = with("[[credentials]]\nid = \"p\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\nclaims = []");
    assert!(e.contains("wallet.credentials[0].claims"), "{e}");
    let mdl = "[[credentials]]\nid = \"mdl\"\nformat = \"mso_mdoc\"\ndoctype = \"org.iso.18013.5.1.mDL\"\n";
    let ns = "namespace = \"org.iso.18013.5.1\"\n";
    for (credential, named) in [
        (format!("{mdl}claims = [\"family_name\"]"), "doctype"),
        (format!("{mdl}{ns}vct = [\"v\"]\nclaims = [\"a\"]"), "vct"),
    ] {
        let e = with(&credential);
        assert!(e.contains(&format!("wallet.credentials[0].{named}")), "{e}");
    }
    let mut t = table(&key, &chain, "");
    let c: toml::Table = toml::from_str(&format!(
        "{mdl}namespace = \"org.iso.18013.5.1\"\nclaims = [\"family_name\", \"birth_date\"]"
    ))
    .unwrap();
    t.insert("credentials".into(), c["credentials"].clone());
    let w = load_wallet(t, "acme.toml", url).unwrap();
    let mdl = &w.credentials[0];
    assert_eq!(
        (mdl.format, mdl.doctype.as_str(), mdl.namespace.as_str()),
        (Format::Mdoc, "org.iso.18013.5.1.mDL", "org.iso.18013.5.1")
    );
    let mut t = table(&key, &chain, "");
    t.insert("credentials".into(), toml::Value::Array(Vec::new()));
    assert!(problem(t, url).contains("wallet.credentials"));
}

#[test]
fn the_chain_s_leaf_is_not_self_signed_verifies_to_the_last_and_a_root_is_not_sent() {
    let url = "https://gateway.example";
    let (key, chain) = access(&["gateway.example"]);
    let w = load_wallet(table(&key, &chain, ""), "acme.toml", url).unwrap();
    let der = certificate_chain(&chain).unwrap();
    assert_eq!(
        (der.len(), w.signer.chain.clone()),
        (2, vec![der[0].clone()])
    );
    // The leaf alone, issued by a CA the wallet knows: sent as it is.
    let leaf_only = chain[..chain.find("-----END CERTIFICATE-----").unwrap() + 26].to_string();
    let w = load_wallet(table(&key, &leaf_only, ""), "acme.toml", url).unwrap();
    assert_eq!(w.signer.chain, vec![der[0].clone()]);
    // A self-signed leaf.
    let own = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let self_signed = rcgen::CertificateParams::new(vec!["gateway.example".to_string()])
        .unwrap()
        .self_signed(&own)
        .unwrap();
    let e = problem(table(&own.serialize_pem(), &self_signed.pem(), ""), url);
    assert!(
        e.contains("wallet.certificate_chain") && e.contains("self-signed"),
        "{e}"
    );
    // The leaf, then a CA that did not issue it.
    let (_, other) = ca();
    let e = problem(
        table(&key, &format!("{leaf_only}\n{}", other.pem()), ""),
        url,
    );
    assert!(
        e.contains("wallet.certificate_chain") && e.contains("does not verify"),
        "{e}"
    );
}

#[test]
fn each_credential_may_trust_its_own_issuers_and_the_team_s_may_then_be_empty() {
    let url = "https://gateway.example";
    let (key, chain) = access(&["gateway.example"]);
    let f: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/wallet/fixtures.json")).unwrap();
    let other = f["other_root"].as_str().unwrap();
    let own = |id: &str, pem: &str| {
        format!(
            "[[credentials]]\nid = \"{id}\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\n\
             claims = [\"family_name\"]\ntrusted_issuers = ['''{pem}''']\n"
        )
    };
    let with = |team: &str, credentials: String| {
        let mut t = table(&key, &chain, team);
        let c: toml::Table = toml::from_str(&credentials).unwrap();
        t.insert("credentials".into(), c["credentials"].clone());
        t
    };
    // Each its own: the team's list may be empty.
    let both = format!("{}{}", own("pid", &issuer()), own("mdl", other));
    let w = load_wallet(with("trusted_issuers = []", both), "acme.toml", url).unwrap();
    assert_eq!(
        w.credentials[0].authorities,
        ["PGZDRxwMPAeXpXu-xoeTzs12-hA"]
    );
    assert_ne!(w.credentials[1].authorities, w.credentials[0].authorities);
    // One without its own and no team list: the team's key is named.
    let one = format!(
        "{}[[credentials]]\nid = \"mdl\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\nclaims = [\"a\"]\n",
        own("pid", &issuer())
    );
    let e = problem(with("trusted_issuers = []", one.clone()), url);
    assert!(
        e.contains("wallet.trusted_issuers") && e.contains("credentials[1]"),
        "{e}"
    );
    // With a team list, the one without its own takes the team's.
    let w = load_wallet(with("", one), "acme.toml", url).unwrap();
    assert_eq!(
        w.credentials[1].authorities,
        ["PGZDRxwMPAeXpXu-xoeTzs12-hA"]
    );
    // Its own list empty, or not a certificate: its key is named.
    let e = problem(with("", own("pid", "").replace("['''''']", "[]")), url);
    assert!(e.contains("wallet.credentials[0].trusted_issuers"), "{e}");
    let e = problem(with("", own("pid", "junk")), url);
    assert!(
        e.contains("wallet.credentials[0].trusted_issuers[0]"),
        "{e}"
    );
}

#[test]
fn claims_are_names_or_a_table_from_match_names_to_the_credential_s_own() {
    let url = "https://gateway.example";
    let (key, chain) = access(&["gateway.example"]);
    let with = |claims: &str| {
        let mut t = table(&key, &chain, "");
        let c: toml::Table = toml::from_str(&format!(
            "[[credentials]]\nid = \"pid\"\nformat = \"mso_mdoc\"\ndoctype = \"d\"\n\
             namespace = \"n\"\nclaims = {claims}\n"
        ))
        .unwrap();
        t.insert("credentials".into(), c["credentials"].clone());
        t
    };
    let w = load_wallet(
        with("{birthdate = \"birth_date\", family_name = \"family_name\"}"),
        "acme.toml",
        url,
    )
    .unwrap();
    let c = &w.credentials[0];
    assert_eq!(c.own_name("birthdate"), Some("birth_date"));
    assert_eq!(c.own_name("family_name"), Some("family_name"));
    assert_eq!(c.own_name("birth_date"), None);
    let names: Vec<&String> = vec![&c.claims[0].name];
    assert_eq!(c.query(names.into_iter()).claims, ["birth_date"]);
    for (claims, named) in [
        ("{}", "wallet.credentials[0].claims"),
        ("{a = \"x\", b = \"x\"}", "wallet.credentials[0].claims.b"),
        ("{a = \"\"}", "wallet.credentials[0].claims.a"),
        ("[\"a\", \"a\"]", "wallet.credentials[0].claims[1]"),
    ] {
        let e = problem(with(claims), url);
        assert!(e.contains(named), "{claims}: {e}");
    }
}

#[test]
fn invocation_and_registration_certificate_are_checked_with_their_key_named() {
    let url = "https://gateway.example";
    let (key, chain) = access(&["gateway.example"]);
    let w = load_wallet(table(&key, &chain, ""), "acme.toml", url).unwrap();
    assert_eq!(
        (w.invocation.as_str(), w.registration),
        ("openid4vp://", None)
    );
    for fine in ["haip-vp://", "https://wallet.example/open"] {
        let extra = format!("invocation = \"{fine}\"");
        let w = load_wallet(table(&key, &chain, &extra), "acme.toml", url).unwrap();
        assert_eq!(w.invocation, fine);
    }
    // A wallet on the same machine, for a gateway on it too (the demo's).
    let (local_key, local_chain) = access(&["localhost"]);
    for fine in ["http://127.0.0.1:9000/wallet", "http://localhost/wallet"] {
        let extra = format!("invocation = \"{fine}\"");
        let t = table(&local_key, &local_chain, &extra);
        let w = load_wallet(t, "acme.toml", "http://localhost:8080").unwrap();
        assert_eq!(w.invocation, fine);
    }
    for bad in [
        "openid-vp://",
        "http://wallet.example/open",
        "http://10.0.0.1/open",
        "http://127.0.0.1:9000/wallet",
        "http://localhost/wallet",
        "https://localhost/wallet",
        "https://wallet.example/open?x=1",
        "https://",
        "",
    ] {
        let e = problem(table(&key, &chain, &format!("invocation = \"{bad}\"")), url);
        assert!(e.contains("wallet.invocation"), "{bad}: {e}");
    }
    let jwt = |header: &str| {
        format!(
            "{}.{}.c2ln",
            to_b64url(header.as_bytes()),
            to_b64url(b"{\"sub\":\"acme\"}")
        )
    };
    let good = jwt(r#"{"alg":"ES256","typ":"rc-wrp+jwt"}"#);
    let extra = format!("registration_certificate = \"{good}\"");
    let w = load_wallet(table(&key, &chain, &extra), "acme.toml", url).unwrap();
    assert_eq!(w.registration.as_deref(), Some(good.as_str()));
    for bad in [
        jwt(r#"{"alg":"ES256","typ":"JWT"}"#),
        jwt(r#"{"alg":"ES256"}"#),
        "not.a.jwt".to_string(),
        "abc".to_string(),
    ] {
        let extra = format!("registration_certificate = \"{bad}\"");
        let e = problem(table(&key, &chain, &extra), url);
        assert!(
            e.contains("wallet.registration_certificate") && !e.contains(&bad),
            "{bad}: {e}"
        );
    }
}

/// The registration certificate's header is read once: the reading that
/// checks its `typ` gives its `x5c` too (base64 DER, leaf first; none for
/// a header without one, an empty one or one that is not base64).
#[test]
fn the_registration_certificate_s_x5c_comes_from_its_one_header_reading() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let jwt = |header: serde_json::Value| {
        format!(
            "{}.{}.c2ln",
            to_b64url(header.to_string().as_bytes()),
            to_b64url(b"{\"sub\":\"acme\"}")
        )
    };
    let (leaf, ca) = (vec![1u8, 2, 3], vec![4u8, 5]);
    let x5c = serde_json::json!([b64.encode(&leaf), b64.encode(&ca)]);
    let with = jwt(serde_json::json!({"alg": "ES256", "typ": "rc-wrp+jwt", "x5c": x5c}));
    let (read, chain) = registration_certificate(&format!(" {with}\n")).unwrap();
    assert_eq!((read, chain), (with, Some(vec![leaf, ca])));
    for x5c in [
        None,
        Some(serde_json::json!([])),
        Some(serde_json::json!(["not base64!"])),
    ] {
        let mut header = serde_json::json!({"alg": "ES256", "typ": "rc-wrp+jwt"});
        if let Some(x5c) = x5c.clone() {
            header["x5c"] = x5c;
        }
        let (_, chain) = registration_certificate(&jwt(header)).unwrap();
        assert_eq!(chain, None, "{x5c:?}");
    }
    // A header of another typ is refused before its x5c is looked at.
    let other = jwt(serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": ["AQID"]}));
    assert!(registration_certificate(&other).is_err());
}

/// A `[wallet]` whose `credentials` are those `credentials` (TOML with
/// `[[credentials]]` tables) writes, read.
fn with_credentials(credentials: &str) -> Result<WalletConfig, ConfigError> {
    let (key, chain) = access(&["gateway.example"]);
    let mut t = table(&key, &chain, "");
    let c: toml::Table = toml::from_str(credentials).unwrap();
    t.insert("credentials".into(), c["credentials"].clone());
    load_wallet(t, "acme.toml", "https://gateway.example")
}

#[test]
fn a_credential_s_purpose_is_identity_by_default_and_sca_is_an_sd_jwt_vc_s_alone() {
    let read = with_credentials;
    let w = read(
        "[[credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\nclaims = [\"a\"]",
    )
    .unwrap();
    assert_eq!(w.credentials[0].purpose, Purpose::Identity);
    // An SCA attestation may compare no claim at all.
    let w = read(
        "[[credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\npurpose = \"sca\"",
    )
    .unwrap();
    assert_eq!(w.credentials[0].purpose, Purpose::Sca);
    assert!(w.credentials[0].claims.is_empty());
    let mdl = "[[credentials]]\nid = \"mdl\"\nformat = \"mso_mdoc\"\ndoctype = \"d\"\n\
               namespace = \"n\"\nclaims = [\"a\"]\n";
    for (credential, problem) in [
        (
            format!("{mdl}purpose = \"sca\""),
            "is for format dc+sd-jwt only",
        ),
        (
            format!("{mdl}purpose = \"payment\""),
            "must be \"identity\" or \"sca\"",
        ),
    ] {
        let e = read(&credential).unwrap_err().to_string();
        assert!(e.contains("wallet.credentials[0].purpose"), "{e}");
        assert!(e.contains(problem), "{e}");
    }
    let e = read("[[credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\npurpose = \"identity\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("wallet.credentials[0].claims"), "{e}");
}

#[test]
fn an_sca_credential_s_registration_is_required_by_default_and_named_when_refused() {
    let read = with_credentials;
    let sca =
        "[[credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\npurpose = \"sca\"\n";
    assert!(read(sca).unwrap().credentials[0].registered_only);
    let required = format!("{sca}registration = \"required\"");
    assert!(read(&required).unwrap().credentials[0].registered_only);
    let none = format!("{sca}registration = \"none\"");
    assert!(!read(&none).unwrap().credentials[0].registered_only);
    let pid =
        "[[credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\nvct = [\"v\"]\nclaims = [\"a\"]\n";
    assert!(!read(pid).unwrap().credentials[0].registered_only);
    for (credential, problem) in [
        (
            format!("{sca}registration = \"always\""),
            "must be \"required\" or \"none\"",
        ),
        (
            format!("{pid}registration = \"none\""),
            "is for purpose \"sca\" only",
        ),
    ] {
        let e = read(&credential).unwrap_err().to_string();
        assert!(e.contains("wallet.credentials[0].registration"), "{e}");
        assert!(e.contains(problem), "{e}");
    }
}
