//! The provider-side scenarios of `provider.rs`, run against the gateway:
//! `oversized-provider`, `mix-up` and `stand-in-provider`.
use std::sync::Arc;

use tokio::time::Instant;

use super::{provider, Args};

/// `oversized-provider` or `mix-up`: see `provider.rs`.
pub async fn run(a: &Args) -> Result<(), String> {
    let hostile = provider::Shared::default();
    let issuer = provider::serve(a.listen, Arc::clone(&hostile))
        .await
        .map_err(|e| format!("--listen {}: {e}", a.listen))?;
    println!("provider at {issuer}");
    if a.scenario == "stand-in-provider" {
        return std::future::pending().await;
    }
    let b = provider::Browser::new(a.target, a.public_url.clone());
    if a.scenario == "oversized-provider" {
        if let Ok(mut h) = hostile.lock() {
            h.token_mib = a.mib.max(1);
        }
        let (_, link) = b.oidc_link(&a.key).await?;
        println!("before: {}", provider::rss(a.pid));
        let step = b.get(&link, None).await?;
        let cookie = step.cookie;
        let mut next = step
            .location
            .ok_or(format!("the link answered {}", step.status))?;
        let started = Instant::now();
        // The browser: to this provider, back to the gateway's callback.
        let last = loop {
            let step = b.get(&next, cookie.as_deref()).await?;
            match step.location {
                Some(l) if (300..400).contains(&step.status) => next = l,
                _ => break step.status,
            }
        };
        println!(
            "callback answered {last} in {} ms (expected 502); {}",
            started.elapsed().as_millis(),
            provider::rss(a.pid)
        );
        return Ok(());
    }
    // mix-up. The attacker's login in his chat at the victim's team.
    let (attackers_chat, link) = b.oidc_link(&a.key).await?;
    let step = b.get(&link, None).await?;
    let attackers_cookie = step.cookie.ok_or("no cookie from the victim team's link")?;
    let request = step
        .location
        .ok_or(format!("the link answered {}", step.status))?;
    let mut parsed = url::Url::parse(&request).map_err(|e| e.to_string())?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let find = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let attackers_state = find("state").ok_or("no state")?;
    let redirect_uri = find("redirect_uri").ok_or("no redirect_uri")?;
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().filter(|(k, _)| k != "state"));
    if let Ok(mut h) = hostile.lock() {
        h.forward_to = Some(parsed.to_string());
    }
    // The victim opens the attacker's team's link.
    let (_, link) = b.oidc_link(&a.other_key).await?;
    let step = b.get(&link, None).await?;
    let victims_cookie = step.cookie;
    let mut next = step
        .location
        .ok_or(format!("the link answered {}", step.status))?;
    let victims_answer = loop {
        let step = b.get(&next, victims_cookie.as_deref()).await?;
        match step.location {
            Some(l) if (300..400).contains(&step.status) => next = l,
            _ if b.is_gateway(&next) => break step.status,
            _ => {
                return Err(format!(
                    "the victim's provider shows a page ({}) at {next}: this replay needs one that signs in at once",
                    step.status
                ))
            }
        }
    };
    println!(
        "the victim's browser came back to {} and got {victims_answer} (expected 400)",
        next.split('?').next().unwrap_or("")
    );
    let stolen = hostile.lock().map(|h| h.codes.clone()).unwrap_or_default();
    println!(
        "codes that reached the hostile token endpoint: {} (expected 0)",
        stolen.len()
    );
    for code in &stolen {
        let mut replay = url::Url::parse(&redirect_uri).map_err(|e| e.to_string())?;
        replay
            .query_pairs_mut()
            .append_pair("code", code)
            .append_pair("state", &attackers_state);
        let step = b.get(replay.as_str(), Some(&attackers_cookie)).await?;
        println!("replayed under the attacker's state: {}", step.status);
    }
    println!(
        "the attacker's chat: {} (expected not authenticated)",
        b.status(&a.key, &attackers_chat).await
    );
    Ok(())
}
