//! An [`SmsSender`] for an HTTP gateway: one POST per code, with the phone and the text put
//! into a body template (the shape MSG91, Twilio and most gateways share), bearer, basic or
//! header auth, a timeout per attempt, and retries with backoff when the gateway is down.
//!
//! Nothing here logs the code, the text or the body: not the request, and not the gateway's
//! answer (gateways like to echo the message back). Failures are logged by status alone.

use super::sms::SmsSender;
use crate::config::{Secret, SmsAuth, SmsGatewayConfig};
use anyhow::{bail, Context};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;

/// The words a person reads; `{code}` is replaced by the six digits.
const TEXT: &str = "Your Tara login code is {code}. It expires in 5 minutes. Do not share it.";

/// Sends codes through an HTTP gateway.
pub struct HttpSms {
    client: reqwest::Client,
    config: SmsGatewayConfig,
    escape: Escape,
}

/// How placeholder values are written into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Inside a JSON string: quotes, backslashes and control characters escaped.
    Json,
    /// A form field: percent-encoded.
    Form,
    /// As they are.
    Raw,
}

impl HttpSms {
    /// Checks the settings (the template must name the phone and the text or code, and a JSON
    /// template must give JSON) and builds the client.
    pub fn new(config: SmsGatewayConfig) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&config.url).context("--sms-url is not a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--sms-url must be an http or https URL");
        }
        let t = &config.template;
        if !(t.contains("{phone}") || t.contains("{phone_digits}")) {
            bail!("--sms-template must contain {{phone}} or {{phone_digits}}");
        }
        if !(t.contains("{text}") || t.contains("{code}")) {
            bail!("--sms-template must contain {{text}} or {{code}}");
        }
        let ct = config.content_type.to_ascii_lowercase();
        let escape = if ct.contains("json") {
            Escape::Json
        } else if ct.contains("x-www-form-urlencoded") {
            Escape::Form
        } else {
            Escape::Raw
        };
        if escape == Escape::Json {
            let sample = render(t, escape, "+910000000000", "a \"quoted\" text", "000000");
            serde_json::from_str::<serde_json::Value>(&sample)
                .context("--sms-template does not give JSON (placeholders go inside strings)")?;
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .context("cannot build the SMS gateway's HTTP client")?;
        Ok(Self {
            client,
            config,
            escape,
        })
    }

    async fn attempt(&self, body: &str) -> Result<StatusCode, Failure> {
        let mut req = self
            .client
            .post(&self.config.url)
            .header(CONTENT_TYPE, &self.config.content_type)
            .body(body.to_owned());
        req = match &self.config.auth {
            SmsAuth::Bearer => req.header(AUTHORIZATION, format!("Bearer {}", self.token())),
            SmsAuth::Basic => req.header(
                AUTHORIZATION,
                format!("Basic {}", B64.encode(self.token().as_bytes())),
            ),
            SmsAuth::Header(name) => req.header(name.as_str(), self.token()),
        };
        match req.send().await {
            Ok(res) => {
                let status = res.status();
                // The answer is read and dropped unseen: it may quote the code.
                let _ = res.bytes().await;
                if status.is_success() {
                    Ok(status)
                } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    Err(Failure::Retry(format!("the gateway answered {status}")))
                } else {
                    Err(Failure::Final(format!("the gateway refused with {status}")))
                }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "the gateway did not answer in time"
                } else if e.is_connect() {
                    "the gateway could not be reached"
                } else {
                    "the request to the gateway failed"
                };
                Err(Failure::Retry(what.into()))
            }
        }
    }

    fn token(&self) -> &str {
        self.config.token.expose()
    }
}

enum Failure {
    /// Worth another try (5xx, 429, no answer).
    Retry(String),
    /// The gateway said no for good (4xx).
    Final(String),
}

#[async_trait]
impl SmsSender for HttpSms {
    async fn send_code(&self, phone: &str, code: &str) -> anyhow::Result<()> {
        let text = TEXT.replace("{code}", code);
        let body = render(&self.config.template, self.escape, phone, &text, code);
        let attempts = self.config.retries + 1;
        let mut last = String::new();
        for n in 1..=attempts {
            match self.attempt(&body).await {
                Ok(status) => {
                    tracing::info!(%phone, %status, attempt = n, "login code handed to the SMS gateway");
                    return Ok(());
                }
                Err(Failure::Final(why)) => {
                    tracing::warn!(%phone, attempt = n, "{why}");
                    bail!("{why}");
                }
                Err(Failure::Retry(why)) => {
                    tracing::warn!(%phone, attempt = n, of = attempts, "{why}");
                    last = why;
                    if n < attempts {
                        let wait = self.config.backoff.saturating_mul(1 << (n - 1).min(6));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        bail!("{last} ({attempts} attempts)")
    }
}

/// The template with `{phone}`, `{phone_digits}`, `{text}` and `{code}` filled in, each value
/// escaped for where it stands. One pass, so a value that looks like a placeholder stays as is.
fn render(template: &str, escape: Escape, phone: &str, text: &str, code: &str) -> String {
    let digits = phone.trim_start_matches('+');
    let mut out = String::with_capacity(template.len() + text.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let hit = [
            ("{phone_digits}", digits),
            ("{phone}", phone),
            ("{text}", text),
            ("{code}", code),
        ]
        .into_iter()
        .find(|(name, _)| after.starts_with(name));
        match hit {
            Some((name, value)) => {
                push_escaped(&mut out, value, escape);
                rest = &after[name.len()..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Raw => out.push_str(value),
        Escape::Json => {
            let quoted = serde_json::Value::String(value.to_owned()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        Escape::Form => {
            for b in value.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        out.push(b as char)
                    }
                    b' ' => out.push('+'),
                    _ => out.push_str(&format!("%{b:02X}")),
                }
            }
        }
    }
}

impl std::fmt::Debug for HttpSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSms")
            .field("url", &self.config.url)
            .field("token", &Secret::REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_escaped_for_json_and_forms() {
        let json = render(
            r#"{"to":"{phone}","msg":"{text}"}"#,
            Escape::Json,
            "+911",
            "say \"hi\"",
            "1",
        );
        assert_eq!(json, r#"{"to":"+911","msg":"say \"hi\""}"#);
        let form = render(
            "To={phone}&Body={text}&n={phone_digits}",
            Escape::Form,
            "+911",
            "a b&c",
            "1",
        );
        assert_eq!(form, "To=%2B911&Body=a+b%26c&n=911");
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_is_not_filled_again() {
        let out = render("{text}|{code}|{other}", Escape::Raw, "+1", "{code}", "42");
        assert_eq!(out, "{code}|42|{other}");
    }
}
