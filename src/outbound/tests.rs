//! The address classification, the resolver's filter and a connection
//! refused where a name resolves to loopback.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_special_purpose_range_is_refused_at_its_edges() {
    for addr in [
        // IPv4: each registry block, its first and last address.
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.0",
        "10.255.255.255",
        "100.64.0.0",
        "100.100.100.200",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.0.1",
        "169.254.169.254",
        "172.16.0.0",
        "172.31.255.255",
        "192.0.0.0",
        "192.0.0.9",
        "192.0.0.255",
        "192.0.2.1",
        "192.31.196.1",
        "192.52.193.1",
        "192.88.99.1",
        "192.168.0.1",
        "192.175.48.1",
        "198.18.0.0",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6.
        "::",
        "::1",
        "fc00::1",
        "fdff:ffff::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "100::1",
        "100:0:0:1::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:1ff::1",
        "2001:db8::1",
        "2620:4f:8000::1",
        "3fff::1",
        "5f00::1",
        "64:ff9b:1::a00:1",
        // The embedded address is checked as itself.
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::c612:1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:c0a8:1::",
    ] {
        assert!(special(ip(addr)), "{addr} is special");
    }
}

#[test]
fn ordinary_public_addresses_are_allowed_embedded_ones_too() {
    for addr in [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.0",
        "191.255.255.255",
        "192.0.1.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "2001:200::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert!(!special(ip(addr)), "{addr} is public");
    }
}

#[test]
fn a_name_keeps_only_its_public_addresses_and_none_left_is_refused() {
    let at = |s: &str| SocketAddr::new(ip(s), 443);
    let mixed = vec![at("127.0.0.1"), at("93.184.215.14"), at("::1")];
    assert_eq!(public_of(mixed), Ok(vec![at("93.184.215.14")]));
    let private = vec![at("10.0.0.1"), at("fd00::1"), at("169.254.169.254")];
    assert_eq!(public_of(private), Err(Refused));
    assert_eq!(public_of(vec![]), Err(Refused));
}

#[tokio::test]
async fn localhost_is_resolved_once_and_refused_and_a_file_s_reach_is_not() {
    for host in ["localhost", "[::1]", "127.0.0.1"] {
        let refused = smtp_address(host, 25, Reach::Public).await.unwrap_err();
        assert!(is_refused(&*refused), "{host}: {refused}");
    }
    let unknown = smtp_address("no-such-host.invalid", 25, Reach::Public).await;
    assert!(
        !is_refused(&*unknown.unwrap_err()),
        "a name that does not resolve is unreachable"
    );
    let kept = smtp_address("localhost", 25, Reach::Anywhere)
        .await
        .unwrap();
    assert_eq!(kept, "localhost");
    assert_eq!(Reach::of(true, false), Reach::Public);
    assert_eq!(Reach::of(true, true), Reach::Anywhere);
    assert_eq!(Reach::of(false, false), Reach::Anywhere);
}

/// A loopback listener and the bytes it has been sent, on every
/// connection, so far.
async fn listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    counted.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (port, got)
}

#[tokio::test]
async fn a_public_client_sends_nothing_to_a_name_or_an_address_on_loopback() {
    let clients = Clients::built(|b| b.timeout(std::time::Duration::from_secs(2))).unwrap();
    let (port, received) = listener().await;
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let sent = clients
            .of(Reach::Public)
            .unwrap()
            .post(&url)
            .body("secret")
            .send()
            .await;
        let e = sent.expect_err(&url);
        assert!(is_refused(&e), "{url}: {e:?}");
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "nothing reached the listener"
    );

    // The same request through a file's client arrives (and waits for
    // an answer the listener never gives).
    let url = format!("http://localhost:{port}/hook");
    let anywhere = clients.of(Reach::Anywhere).unwrap().clone();
    let sent = tokio::spawn(async move { anywhere.post(&url).body("x").send().await });
    while received.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sent.abort();
}

/// A loopback listener and how many connections it has accepted.
async fn accepting() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

/// docs/decisions/0561-a-literal-address-is-checked-before-connecting.md:
/// an address written as itself is refused before a connection is tried,
/// so no handshake reaches an open port and an open port and a closed
/// one fail alike, both [`Refused`].
#[tokio::test]
async fn a_literal_special_address_gets_no_handshake_and_open_and_closed_ports_fail_alike() {
    let clients = Clients::built(|b| b.timeout(std::time::Duration::from_secs(2))).unwrap();
    let (open, accepted) = accepting().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for port in [open, closed] {
        for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "127.1.2.3"] {
            let url = format!("http://{host}:{port}/statuslists/1");
            let e = clients
                .of(Reach::Public)
                .unwrap()
                .get(&url)
                .send()
                .await
                .expect_err(&url);
            assert!(is_refused(&e), "{url}: {e:?}");
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no handshake");
    // A file's client connects there.
    let url = format!("http://127.0.0.1:{open}/statuslists/1");
    let _ = clients.of(Reach::Anywhere).unwrap().get(&url).send().await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_destination_s_literal_address_is_read_from_its_debug_form() {
    let read = |s: &str| literal_destination(s);
    assert_eq!(
        read("Unnameable(http://127.0.0.1:8080/)"),
        Some(ip("127.0.0.1"))
    );
    assert_eq!(read("Unnameable(https://[::1]:443/)"), Some(ip("::1")));
    assert_eq!(
        read("https://[::ffff:127.0.0.1]/x"),
        Some(ip("::ffff:127.0.0.1"))
    );
    assert_eq!(read("Unnameable(https://example.com/)"), None);
    assert_eq!(read("Unnameable(https://localhost:1/)"), None);
    assert_eq!(read("not a uri at all"), None);
}
