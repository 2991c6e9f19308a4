//! How the store's failures reach a caller: an outage is
//! `store_unavailable`, an unreadable record an internal error. The store
//! knows nothing of the API's errors; the use cases, which read and commit,
//! turn its errors into them here.
use std::panic::Location;

use crate::error::{Bug, Error};
use crate::store::StoreError;

impl From<StoreError> for Error {
    #[track_caller]
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                // The store logs an outage once (and a summary); per request, debug.
                tracing::debug!(%cause, "store unavailable");
                Error::StoreUnavailable
            }
            StoreError::Corrupt(cause) => Error::Internal(Box::new(Bug {
                what: "a record in the store could not be read",
                source: Some(cause.into()),
                at: Location::caller(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_record_is_an_internal_error_raised_where_it_was_read() {
        let line = line!() + 1;
        let e: Error = StoreError::Corrupt("bad json".into()).into();
        let Error::Internal(bug) = &e else {
            panic!("{e:?}")
        };
        assert_eq!((bug.at.file(), bug.at.line()), (file!(), line));
        assert!(bug.to_string().contains("bad json"));
    }
}
