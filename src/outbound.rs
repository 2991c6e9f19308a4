//! Where the gateway may connect for a team or a channel
//! (docs/operator-api.md#destinations): every outgoing HTTP client is
//! built here ([`builder`]), and an SMTP server's address is found here
//! ([`smtp_address`]). For a team or channel written through the operator
//! API ([`Reach::Public`]), a host is resolved once, every address it got
//! is checked against IANA's special-purpose registries ([`special`]), and
//! the connection goes only to a checked one: no second lookup, no
//! redirect followed, no proxy (one would resolve the name itself). What
//! is refused fails as that destination's failure ([`Refused`]), before a
//! byte of its request is sent
//! (docs/decisions/0500-one-check-where-the-gateway-connects.md).
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};

/// Where a team's or channel's outgoing connections may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any address: a team or channel kept in a file (the people who
    /// deploy the gateway chose it), or any while `[operator]
    /// allow_private_destinations`.
    Anywhere,
    /// Only an address in none of IANA's special-purpose registries: a
    /// team or channel written through the operator API.
    Public,
}

impl Reach {
    /// The reach of a team or channel written through the operator API
    /// (`api`) or kept in a file, with `[operator]
    /// allow_private_destinations` as `allow_private`.
    pub fn of(api: bool, allow_private: bool) -> Reach {
        match api && !allow_private {
            true => Reach::Public,
            false => Reach::Anywhere,
        }
    }
}

/// A destination refused: every address its host has is in a
/// special-purpose registry. The text names no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl Refused {
    /// What a refused destination's failure says.
    pub const TEXT: &'static str =
        "refused: the destination's address is not public ([operator] allow_private_destinations)";
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Refused::TEXT)
    }
}

impl std::error::Error for Refused {}

/// Whether `e`, or an error it was caused by, is a [`Refused`].
pub fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.is::<Refused>() {
            return true;
        }
        at = e.source();
    }
    false
}

/// An HTTP client's builder for `reach`, the one every outgoing client
/// starts from: no redirect followed
/// (docs/decisions/0246-no-redirect-is-followed.md); for
/// [`Reach::Public`], names resolved once and only public addresses
/// kept ([`PublicOnly`]), every connection's peer checked before a byte
/// of the request goes ([`CheckPeer`]: an address written as itself is
/// not resolved), and no proxy.
pub fn builder(reach: Reach) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    match reach {
        Reach::Anywhere => builder,
        Reach::Public => builder
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly))
            .connector_layer(CheckPeer),
    }
}

/// One client for each [`Reach`], built alike: a team's calls take the
/// one of its reach, so no connection made for one is reused for the
/// other.
#[derive(Clone)]
pub struct Clients {
    /// `None` where TLS could not be set up: every call then fails.
    built: Option<Arc<(reqwest::Client, reqwest::Client)>>,
}

impl Clients {
    /// Both clients, each `build` of [`builder`] for its reach; none
    /// where they cannot be built (see [`Clients::built`]).
    pub fn new(build: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder) -> Clients {
        Clients::built(build).unwrap_or(Clients { built: None })
    }

    /// Both clients, or why they cannot be built: TLS cannot be set up
    /// (the start-up refuses it).
    pub fn built(
        build: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> reqwest::Result<Clients> {
        let anywhere = build(builder(Reach::Anywhere)).build()?;
        let public = build(builder(Reach::Public)).build()?;
        Ok(Clients {
            built: Some(Arc::new((anywhere, public))),
        })
    }

    /// The client of `reach`; [`Unbuilt`] where none could be built.
    pub fn of(&self, reach: Reach) -> Result<&reqwest::Client, Unbuilt> {
        let (anywhere, public) = self.built.as_deref().ok_or(Unbuilt)?;
        Ok(match reach {
            Reach::Anywhere => anywhere,
            Reach::Public => public,
        })
    }
}

/// No client: TLS could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbuilt;

impl std::fmt::Display for Unbuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no HTTP client: TLS could not be set up")
    }
}

impl std::error::Error for Unbuilt {}

/// The address an SMTP connection goes to for `host` and `port`: for
/// [`Reach::Anywhere`], the host as written (the transport resolves it);
/// for [`Reach::Public`], the first public address it resolved to,
/// [`Refused`] when it has none (TLS still names `host`), or the lookup's
/// error.
pub async fn smtp_address(host: &str, port: u16, reach: Reach) -> Result<String, BoxError> {
    match reach {
        Reach::Anywhere => Ok(host.to_string()),
        Reach::Public => {
            let addrs = public_addresses(host, port).await?;
            Ok(addrs.first().ok_or(Refused)?.ip().to_string())
        }
    }
}

/// The addresses `host` resolves to (once), without any in a
/// special-purpose registry: [`Refused`] when none is left; the lookup's
/// error when the name does not resolve.
async fn public_addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, BoxError> {
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let found = match name.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((name, port)).await?.collect(),
    };
    Ok(public_of(found)?)
}

/// `found` without the addresses in a special-purpose registry;
/// [`Refused`] when none is left.
fn public_of(found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
    let public: Vec<SocketAddr> = found.into_iter().filter(|a| !special(a.ip())).collect();
    match public.is_empty() {
        true => Err(Refused),
        false => Ok(public),
    }
}

/// The resolver of [`Reach::Public`]'s client: each name resolved once,
/// only its public addresses given to the connector.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = public_addresses(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error of a resolver or a connector.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector layer of [`Reach::Public`]'s client: a destination that
/// writes an address in a special-purpose registry as itself (never
/// resolved, so [`PublicOnly`] never sees it) is refused before any
/// connection is tried, so that no handshake reaches it and an open port
/// and a closed one fail alike ([`Refused`]); and a connection whose peer
/// is in one is dropped before the request is sent
/// (docs/decisions/0561-a-literal-address-is-checked-before-connecting.md).
#[derive(Clone)]
struct CheckPeer;

impl<S> tower::Layer<S> for CheckPeer {
    type Service = PeerChecked<S>;

    fn layer(&self, inner: S) -> PeerChecked<S> {
        PeerChecked(inner)
    }
}

#[derive(Clone)]
struct PeerChecked<S>(S);

impl<S, R> tower::Service<R> for PeerChecked<S>
where
    R: std::fmt::Debug,
    S: tower::Service<R, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        if literal_destination(&format!("{request:?}")).is_some_and(special) {
            return Box::pin(async { Err(Box::new(Refused) as BoxError) });
        }
        let connecting = self.0.call(request);
        Box::pin(async move {
            let conn = connecting.await?;
            let mut extras = axum::http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            match extras.get::<HttpInfo>() {
                Some(info) if !special(info.remote_addr().ip()) => Ok(conn),
                _ => Err(Box::new(Refused) as BoxError),
            }
        })
    }
}

/// The address a connector's destination writes as itself, read from its
/// debug form: reqwest hands a connector layer its URI only wrapped in a
/// type that names nothing but `Debug` (`Unnameable(http://127.0.0.1:8/)`).
/// `None` for a name, or a form not read (the peer is still checked once
/// connected).
fn literal_destination(debugged: &str) -> Option<IpAddr> {
    let inner = debugged
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(debugged);
    let uri: axum::http::Uri = inner.parse().ok()?;
    let host = uri.host()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether `ip` is in IANA's IPv4 or IPv6 special-purpose address
/// registries (or is multicast): loopback, unspecified, private, shared,
/// link-local, benchmarking, IETF protocol assignments, documentation,
/// multicast, broadcast, reserved, unique-local, site-local. An IPv6
/// address that embeds an IPv4 one (IPv4-mapped and -compatible, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is the embedded address checked as
/// itself; the local-use NAT64 prefix `64:ff9b:1::/48` and Teredo (in
/// `2001::/23`) are refused whole.
pub fn special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_special(v4),
        IpAddr::V6(v6) => v6_special(v6),
    }
}

/// IANA's IPv4 Special-Purpose Address Registry, with multicast and the
/// reserved `240.0.0.0/4` (broadcast among it): `(network, prefix length)`.
const V4_BLOCKS: [(u32, u32); 19] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation
    (0xc01f_c400, 24), // 192.31.196.0/24 AS112-v4
    (0xc034_c100, 24), // 192.52.193.0/24 AMT
    (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc0af_3000, 24), // 192.175.48.0/24 direct delegation AS112
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved
    (0xffff_ffff, 32), // 255.255.255.255 limited broadcast
];

/// IANA's IPv6 Special-Purpose Address Registry (the forms that embed an
/// IPv4 address aside), with multicast and site-local.
const V6_BLOCKS: [(u128, u32); 12] = [
    (0x0064_ff9b_0001 << 80, 48),      // 64:ff9b:1::/48 local-use NAT64
    (0x0100 << 112, 64),               // 100::/64 discard-only
    (0x0100_0000_0000_0001 << 64, 64), // 100:0:0:1::/64 dummy prefix
    (0x2001 << 112, 23),               // 2001::/23 IETF protocol assignments, Teredo among them
    (0x2001_0db8 << 96, 32),           // 2001:db8::/32 documentation
    (0x2620_004f_8000 << 80, 48),      // 2620:4f:8000::/48 direct delegation AS112
    (0x3fff << 112, 20),               // 3fff::/20 documentation
    (0x5f00 << 112, 16),               // 5f00::/16 segment routing
    (0xfc00 << 112, 7),                // fc00::/7 unique-local
    (0xfe80 << 112, 10),               // fe80::/10 link-local
    (0xfec0 << 112, 10),               // fec0::/10 site-local
    (0xff00 << 112, 8),                // ff00::/8 multicast
];

fn v4_special(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    (V4_BLOCKS.iter()).any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
}

fn v6_special(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return v4_special(v4);
    }
    let bits = u128::from(ip);
    (V6_BLOCKS.iter()).any(|&(net, len)| bits >> (128 - len) == net >> (128 - len))
}

/// The IPv4 address an IPv6 one carries as itself: IPv4-mapped
/// `::ffff:0:0/96` and -compatible `::/96` (loopback and unspecified
/// among them, as `0.0.0.1` and `0.0.0.0`), NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let last = Ipv4Addr::from(bits as u32);
    match bits >> 32 {
        0 | 0xffff => Some(last),
        0x0064_ff9b_0000_0000_0000_0000 => Some(last),
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from((bits >> 80) as u32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
