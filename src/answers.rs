//! The body of an outbound call's answer, read up to a cap: a provider
//! (an identity provider, a mobile operator) that answers more than it
//! should costs at most the cap in memory, however it sends it.

/// Why an answer's body was not read whole by [`body_capped`].
#[derive(Debug)]
pub enum Uncapped {
    /// Longer than allowed: declared so, or sent so (a chunked answer is
    /// given up as soon as it passes the cap, never read to its end).
    TooLong,
    /// The connection failed, or the client's time ran out, while reading.
    Read(reqwest::Error),
}

/// The body of `res`, read up to `max` bytes.
pub async fn body_capped(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, Uncapped> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(Uncapped::TooLong);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(Uncapped::Read)? {
        if body.len() + chunk.len() > max {
            return Err(Uncapped::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An answer that never ends, chunked without a length, is given up
    /// once past the cap, long before the client's time; one within it is
    /// read whole.
    #[tokio::test]
    async fn a_body_is_read_up_to_its_cap_and_no_further() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let res = http.get(format!("http://{at}/")).send().await.unwrap();
        // Read to its end, it would run into the client's time (`Read`).
        let read = body_capped(res, 64 * 1024).await;
        assert!(matches!(read, Err(Uncapped::TooLong)), "{read:?}");

        use wiremock::matchers::any;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_string("y".repeat(1000)))
            .mount(&server)
            .await;
        let res = http.get(server.uri()).send().await.unwrap();
        assert_eq!(body_capped(res, 1000).await.unwrap().len(), 1000);
        let res = http.get(server.uri()).send().await.unwrap();
        assert!(matches!(
            body_capped(res, 999).await,
            Err(Uncapped::TooLong)
        ));
    }
}
