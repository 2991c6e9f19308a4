//! Signs a pre-chat identity assertion, as a website whose customer is
//! already logged in would, and prints it with the call a bot makes.
//!
//! ```sh
//! cargo run --example prechat -- cust-42 [fingerprint] [region]
//! ```
//! It reads the sample config (`config/chatgate.toml`, team `acme`) for the
//! key and the gateway's issuer (the assertion's `aud`). The call it prints
//! uses the README tour's shell variables: `$G` (the gateway), `$ID` (the
//! interaction) and `$BOT` (the bot's API key).
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let customer = args.next().unwrap_or_else(|| "cust-42".into());
    let fingerprint = args.next();
    let region = args.next();
    let config = chatgate::config::load(std::path::Path::new("config/chatgate.toml"))?;
    let team = config
        .teams
        .get("acme")
        .ok_or("the sample config has no team acme")?;
    let key = team.primary_key().ok_or("team acme has no primary key")?;

    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": team.id, "aud": config.server.issuer, "sub": customer,
        "iat": now, "exp": now + 300, "jti": uuid::Uuid::now_v7().to_string(),
        "name": "Ada Lovelace", "email": "ada@example.com",
    });
    if let Some(f) = fingerprint {
        claims["fingerprint"] = json!(f);
    }
    if let Some(r) = region {
        claims["region"] = json!(r);
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let token = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(key.secret.expose()),
    )?;
    println!("{token}\n");
    println!("# a bot passes it on ($G, $ID and $BOT as in the README's tour):");
    println!(
        "curl -s -X POST $G/v1/interactions/$ID/assertion -H \"Authorization: Bearer $BOT\" \\\n  -H 'content-type: application/json' -d '{{\"assertion\": \"{token}\"}}'"
    );
    Ok(())
}
