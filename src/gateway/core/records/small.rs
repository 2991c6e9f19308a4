//! The small records as the store holds them, each under a key of its own:
//! what a conversation remembers ([`Recognition`]), what a customer
//! validated ([`CustomerDevices`]), the sends to one destination
//! ([`DestinationSends`]) and the recent uses of one link
//! ([`LinkUses`]). Times are unix milliseconds
//! ([`crate::time::stored`]).
use serde::{Deserialize, Serialize};

use super::interaction::StoredMethod;
use super::{Readable, Record};
use crate::domain::browser::LinkUses;
use crate::domain::destination::DestinationSends;
use crate::domain::devices::CustomerDevices;
use crate::domain::recognition::Recognition;
use crate::time::{stored, Timestamp};

/// `$domain` is read from its stored form `$stored`.
macro_rules! read_as {
    ($domain:ty, $stored:ty) => {
        impl Readable for $domain {
            fn read(text: &str, _key: &str) -> Result<Self, String> {
                serde_json::from_str::<$stored>(text)
                    .map(Into::into)
                    .map_err(|e| e.to_string())
            }
        }
    };
}

read_as!(Recognition, StoredRecognition);
read_as!(CustomerDevices, StoredDevices);
read_as!(DestinationSends, StoredSends);
read_as!(LinkUses, StoredLinkUses);

/// A [`Recognition`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecognition {
    cu: String,
    m: StoredMethod,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(with = "stored")]
    u: Timestamp,
}

impl From<&Recognition> for StoredRecognition {
    fn from(r: &Recognition) -> Self {
        StoredRecognition {
            cu: r.customer_id.clone(),
            m: r.method.into(),
            at: r.authenticated_at,
            u: r.until,
        }
    }
}

impl From<StoredRecognition> for Recognition {
    fn from(r: StoredRecognition) -> Self {
        Recognition {
            customer_id: r.cu,
            method: r.m.into(),
            authenticated_at: r.at,
            until: r.u,
        }
    }
}

/// A team's store marker as stored: since when its data is whole (`at`,
/// ms), and whether it was written because the marker was found gone
/// (`r`), see `gateway/store_epoch.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEpoch {
    #[serde(with = "stored")]
    pub at: Timestamp,
    #[serde(default)]
    pub r: bool,
}

impl Record for StoredEpoch {}

/// [`CustomerDevices`] as stored (both members always written).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDevices {
    #[serde(default)]
    fingerprints: Vec<String>,
    #[serde(default)]
    last_region: Option<String>,
}

impl From<&CustomerDevices> for StoredDevices {
    fn from(d: &CustomerDevices) -> Self {
        StoredDevices {
            fingerprints: d.fingerprints.clone(),
            last_region: d.last_region.clone(),
        }
    }
}

impl From<StoredDevices> for CustomerDevices {
    fn from(d: StoredDevices) -> Self {
        CustomerDevices {
            fingerprints: d.fingerprints,
            last_region: d.last_region,
        }
    }
}

/// [`DestinationSends`] as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSends {
    #[serde(default, with = "stored::vec")]
    se: Vec<Timestamp>,
}

impl From<&DestinationSends> for StoredSends {
    fn from(d: &DestinationSends) -> Self {
        StoredSends {
            se: d.sends.clone(),
        }
    }
}

impl From<StoredSends> for DestinationSends {
    fn from(d: StoredSends) -> Self {
        DestinationSends { sends: d.se }
    }
}

/// [`LinkUses`] as stored: their times under `se`, as a destination's
/// sends were, so that a count kept before it had a form of its own
/// reads the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLinkUses {
    #[serde(default, with = "stored::vec")]
    se: Vec<Timestamp>,
}

impl From<&LinkUses> for StoredLinkUses {
    fn from(u: &LinkUses) -> Self {
        StoredLinkUses { se: u.at.clone() }
    }
}

impl From<StoredLinkUses> for LinkUses {
    fn from(u: StoredLinkUses) -> Self {
        LinkUses { at: u.se }
    }
}
