//! Selective disclosure (docs/wallet.md#sd-jwt-vc): the disclosures of a
//! presentation put back where their digests stand in the issuer's claims,
//! at any depth (`_sd` arrays of objects, `{"...": digest}` array
//! elements). Every disclosure must be referenced, and no digest may
//! appear twice; digests with no disclosure (decoys, or claims not shown)
//! are dropped.
use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::invalid::Invalid;
use super::jose::{b64url, to_b64url, Object};

/// How deep disclosed claims may nest; deeper is refused, not recursed.
const MAX_DEPTH: usize = 32;

/// The claims an issuer may never make selectively disclosable at the top.
const NEVER_DISCLOSED: &[&str] = &["iss", "nbf", "exp", "cnf", "vct", "vct#integrity", "status"];

/// The hash of the digests (`_sd_alg`), SHA-256 when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The algorithm `_sd_alg` names (IANA's hash names), if supported.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha-256" => Some(Self::Sha256),
            "sha-384" => Some(Self::Sha384),
            "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The base64url digest of `text`.
    pub fn digest(self, text: &str) -> String {
        match self {
            Self::Sha256 => to_b64url(&Sha256::digest(text.as_bytes())),
            Self::Sha384 => to_b64url(&Sha384::digest(text.as_bytes())),
            Self::Sha512 => to_b64url(&Sha512::digest(text.as_bytes())),
        }
    }
}

/// One disclosure: a property (`[salt, name, value]`) or an array element
/// (`[salt, value]`).
#[derive(Debug, Clone)]
enum Disclosed {
    Property(String, Value),
    Element(Value),
}

/// The disclosures by digest, each taken once.
struct Pool {
    by_digest: HashMap<String, Disclosed>,
    seen: HashSet<String>,
    /// The top-level claim names that came from disclosures.
    disclosed_top: HashSet<String>,
}

/// `claims` (the issuer-signed payload) with `disclosures` put back, and
/// its `_sd` and `_sd_alg` members removed.
pub fn disclose(claims: Object, disclosures: &[&str], alg: HashAlg) -> Result<Object, Invalid> {
    let mut pool = Pool {
        by_digest: HashMap::new(),
        seen: HashSet::new(),
        disclosed_top: HashSet::new(),
    };
    for d in disclosures {
        if pool.by_digest.insert(alg.digest(d), parse(d)?).is_some() {
            return Err(Invalid::DigestTwice);
        }
    }
    let mut claims = claims;
    claims.remove("_sd_alg");
    let top = pool.object(claims, 0)?;
    if !pool.by_digest.is_empty() {
        return Err(Invalid::UnreferencedDisclosure);
    }
    if NEVER_DISCLOSED
        .iter()
        .any(|n| pool.disclosed_top.contains(*n))
    {
        return Err(Invalid::ProtectedClaimDisclosed);
    }
    Ok(top)
}

/// A disclosure's JSON array.
fn parse(disclosure: &str) -> Result<Disclosed, Invalid> {
    let bytes = b64url(disclosure).ok_or(Invalid::BadDisclosure)?;
    let array = match serde_json::from_slice(&bytes) {
        Ok(Value::Array(a)) => a,
        _ => return Err(Invalid::BadDisclosure),
    };
    let mut items = array.into_iter();
    match (items.next(), items.next(), items.next(), items.next()) {
        (Some(Value::String(_)), Some(Value::String(name)), Some(value), None) => {
            if name == "_sd" || name == "..." {
                return Err(Invalid::BadDisclosure);
            }
            Ok(Disclosed::Property(name, value))
        }
        (Some(Value::String(_)), Some(value), None, None) => Ok(Disclosed::Element(value)),
        _ => Err(Invalid::BadDisclosure),
    }
}

impl Pool {
    /// Marks `digest` seen (a second time is refused) and takes its
    /// disclosure, if one was presented.
    fn take(&mut self, digest: &Value) -> Result<Option<Disclosed>, Invalid> {
        let digest = digest.as_str().ok_or(Invalid::BadDisclosure)?;
        if !self.seen.insert(digest.to_string()) {
            return Err(Invalid::DigestTwice);
        }
        Ok(self.by_digest.remove(digest))
    }

    fn value(&mut self, value: Value, depth: usize) -> Result<Value, Invalid> {
        if depth > MAX_DEPTH {
            return Err(Invalid::BadDisclosure);
        }
        Ok(match value {
            Value::Object(o) => Value::Object(self.object(o, depth + 1)?),
            Value::Array(a) => Value::Array(self.array(a, depth + 1)?),
            other => other,
        })
    }

    fn object(&mut self, mut object: Object, depth: usize) -> Result<Object, Invalid> {
        let digests = match object.remove("_sd") {
            None => Vec::new(),
            Some(Value::Array(d)) => d,
            Some(_) => return Err(Invalid::BadDisclosure),
        };
        let mut out = Object::new();
        for (name, value) in object {
            out.insert(name, self.value(value, depth)?);
        }
        for digest in &digests {
            match self.take(digest)? {
                None => {}
                Some(Disclosed::Property(name, value)) => {
                    if out.contains_key(&name) {
                        return Err(Invalid::BadDisclosure);
                    }
                    if depth == 0 {
                        self.disclosed_top.insert(name.clone());
                    }
                    let value = self.value(value, depth)?;
                    out.insert(name, value);
                }
                Some(Disclosed::Element(_)) => return Err(Invalid::BadDisclosure),
            }
        }
        Ok(out)
    }

    fn array(&mut self, array: Vec<Value>, depth: usize) -> Result<Vec<Value>, Invalid> {
        let mut out = Vec::with_capacity(array.len());
        for item in array {
            let digest = match &item {
                Value::Object(o) if o.len() == 1 => o.get("..."),
                _ => None,
            };
            let Some(digest) = digest else {
                out.push(self.value(item, depth)?);
                continue;
            };
            match self.take(digest)? {
                None => {}
                Some(Disclosed::Element(value)) => out.push(self.value(value, depth)?),
                Some(Disclosed::Property(..)) => return Err(Invalid::BadDisclosure),
            }
        }
        Ok(out)
    }
}
