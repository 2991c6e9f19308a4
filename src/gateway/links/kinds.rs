//! The kinds of challenge link, one [`LinkKind`] each, and their
//! registry [`KINDS`]: the network challenge's page
//! (docs/network-authentication.md#the-link), the wallet's
//! (docs/wallet.md#the-link-page) and the page a code is typed on
//! (docs/api.md#codes-typed-on-the-gateways-page).
use super::{Binds, LinkKind, Registered};
use crate::config::{NumberVerification, Team, WalletConfig};
use crate::domain::challenge::{Challenge, ChallengeMethod};

/// Every kind of challenge link, one line a kind.
pub const KINDS: &[Registered] = &[
    Registered::of::<Network>(),
    Registered::of::<Wallet>(),
    Registered::of::<CodeEntry>(),
];

/// `/n/{code}`: the page that sends the browser to the mobile operator.
pub struct Network;

impl LinkKind for Network {
    type Needs = NumberVerification;
    const NAME: &'static str = "network";
    const PREFIX: &'static str = "n:";
    const PATH: &'static str = "n";
    const BINDS: Binds = Binds::Drawn;

    fn needs(team: &Team) -> Option<&NumberVerification> {
        team.number_verification.as_ref()
    }

    /// A network challenge, or a ladder at its network step.
    fn opens(c: &Challenge) -> bool {
        crate::domain::network_auth::asks_the_operator(c)
    }
}

/// `/w/{code}`: the page that hands a request to a wallet.
pub struct Wallet;

impl LinkKind for Wallet {
    type Needs = WalletConfig;
    const NAME: &'static str = "wallet";
    const PREFIX: &'static str = "wl:";
    const PATH: &'static str = "w";
    const BINDS: Binds = Binds::FromResponse;

    fn needs(team: &Team) -> Option<&WalletConfig> {
        team.wallet.as_ref()
    }

    /// A wallet challenge.
    fn opens(c: &Challenge) -> bool {
        c.method == ChallengeMethod::Wallet && c.wallet.is_some()
    }
}

/// `/c/{code}`: the one-field page a code is typed on.
pub struct CodeEntry;

impl LinkKind for CodeEntry {
    type Needs = ();
    const NAME: &'static str = "code_entry";
    const PREFIX: &'static str = "ce:";
    const PATH: &'static str = "c";
    const BINDS: Binds = Binds::Drawn;

    fn needs(_: &Team) -> Option<&()> {
        Some(&())
    }

    /// A challenge whose code is typed on the page.
    fn opens(c: &Challenge) -> bool {
        c.page_entry
    }
}
