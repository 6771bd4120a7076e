//! The signed-in person's own things: birth-details profiles (customers), devices, and a
//! guide's own card and the ratings received.

use crate::client::Client;
use crate::error::{codes, Error, Result};
use tara_protocol::auth::{SessionInfo, UserType};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput, CustomerProfileList};
use tara_protocol::guides::{Guide, GuideRatings};

impl Client {
    fn customer_path(&self, tail: &str) -> Result<String> {
        let me = self.inner.me()?;
        if me.user_type != UserType::Customer {
            return Err(Error::api(
                tara_protocol::ErrorCode::Forbidden,
                "only customers keep birth-details profiles",
            ));
        }
        Ok(format!("/customers/{}/{tail}", me.user_id))
    }

    /// The customer's birth-details profiles (their own and relatives').
    pub async fn profiles(&self) -> Result<Vec<CustomerProfile>> {
        let list: CustomerProfileList =
            self.inner.api.get(&self.customer_path("profiles")?).await?;
        Ok(list.profiles)
    }

    /// Adds a birth-details profile.
    pub async fn profile_create(&self, details: &CustomerProfileInput) -> Result<CustomerProfile> {
        self.inner
            .api
            .post(&self.customer_path("profiles")?, details)
            .await
    }

    /// The devices signed in to this account.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>> {
        self.inner.api.get("/auth/sessions").await
    }

    /// Signs a device out. Use [`Client::sign_out`] for this one.
    pub async fn session_revoke(&self, session_id: &str) -> Result<()> {
        if self.identity().is_some_and(|i| i.session_id == session_id) {
            return Err(Error::new(
                codes::BAD_INPUT,
                "that is this device; use sign out",
            ));
        }
        let _: serde_json::Value = self
            .inner
            .api
            .call(
                reqwest::Method::DELETE,
                &format!("/auth/sessions/{session_id}"),
                None::<&()>,
            )
            .await?;
        Ok(())
    }

    /// A guide's own card, with live status.
    pub async fn guide_me(&self) -> Result<Guide> {
        self.inner.api.get("/guide/profile").await
    }

    /// The ratings a guide received, newest first, with the average.
    pub async fn guide_ratings(&self) -> Result<GuideRatings> {
        self.inner.api.get("/guide/ratings?limit=100").await
    }
}
