//! The subject as the store holds it: short member names, times as unix
//! milliseconds, empty members left out (a subject with nothing on record
//! is `{"s":"<name>"}`). The counts of an origin and of the strangers sit
//! inside their subject's record, in the same form.
use serde::{Deserialize, Serialize};

use crate::domain::subject::{Ban, FoldedFailures, OriginRecord, SubjectRecord};
use crate::time::{stored, Timestamp};

/// A [`SubjectRecord`] as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubject {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    s: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "stored::vec")]
    f: Vec<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fo: Vec<StoredFolded>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "stored::vec")]
    lo: Vec<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    lu: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<StoredBan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "stored::vec")]
    se: Vec<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    or: Vec<StoredOrigin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    st: Option<Box<StoredSubject>>,
}

impl From<&SubjectRecord> for StoredSubject {
    fn from(r: &SubjectRecord) -> Self {
        StoredSubject {
            s: r.subject.clone(),
            f: r.failures.clone(),
            fo: r.folded.iter().map(StoredFolded::from).collect(),
            lo: r.lockouts.clone(),
            lu: r.locked_until,
            b: r.ban.as_ref().map(StoredBan::from),
            se: r.sends.clone(),
            or: r.origins.iter().map(StoredOrigin::from).collect(),
            st: r.strangers.as_deref().map(|s| Box::new(s.into())),
        }
    }
}

impl From<StoredSubject> for SubjectRecord {
    fn from(r: StoredSubject) -> Self {
        SubjectRecord {
            subject: r.s,
            failures: r.f,
            folded: r.fo.into_iter().map(Into::into).collect(),
            lockouts: r.lo,
            locked_until: r.lu,
            ban: r.b.map(Into::into),
            sends: r.se,
            origins: r.or.into_iter().map(Into::into).collect(),
            strangers: r.st.map(|s| Box::new((*s).into())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredFolded {
    #[serde(with = "stored")]
    a: Timestamp,
    #[serde(with = "stored")]
    z: Timestamp,
    n: u32,
}

impl From<&FoldedFailures> for StoredFolded {
    fn from(f: &FoldedFailures) -> Self {
        StoredFolded {
            a: f.first,
            z: f.last,
            n: f.count,
        }
    }
}

impl From<StoredFolded> for FoldedFailures {
    fn from(f: StoredFolded) -> Self {
        FoldedFailures {
            first: f.a,
            last: f.z,
            count: f.n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredBan {
    #[serde(with = "stored")]
    s: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    u: Option<Timestamp>,
}

impl From<&Ban> for StoredBan {
    fn from(b: &Ban) -> Self {
        StoredBan {
            s: b.since,
            u: b.until,
        }
    }
}

impl From<StoredBan> for Ban {
    fn from(b: StoredBan) -> Self {
        Ban {
            since: b.s,
            until: b.u,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredOrigin {
    o: String,
    #[serde(with = "stored")]
    t: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    fa: Option<Timestamp>,
    #[serde(default)]
    c: StoredSubject,
}

impl From<&OriginRecord> for StoredOrigin {
    fn from(o: &OriginRecord) -> Self {
        StoredOrigin {
            o: o.origin.clone(),
            t: o.seen,
            fa: o.familiar_until,
            c: (&o.counts).into(),
        }
    }
}

impl From<StoredOrigin> for OriginRecord {
    fn from(o: StoredOrigin) -> Self {
        OriginRecord {
            origin: o.o,
            seen: o.t,
            familiar_until: o.fa,
            counts: o.c.into(),
        }
    }
}
