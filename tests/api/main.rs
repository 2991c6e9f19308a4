//! The one integration-test binary: each module is one area of the contract.
mod redis_support;
mod store_contract;
