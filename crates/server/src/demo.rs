//! `--demo`: a few guides, always online, so a new user can try the flow at once.
//! Each can also be logged into as a guide (area code +91, the phone below) to answer.

use crate::app::AppState;
use crate::store::NewGuide;
use tara_protocol::auth::UserType;
use tara_protocol::Timestamp;

/// A demo guide: phone, name, rate, skills, languages.
pub type DemoGuide = (
    &'static str,
    &'static str,
    i64,
    &'static [&'static str],
    &'static [&'static str],
);

/// The demo guides.
pub const GUIDES: [DemoGuide; 4] = [
    (
        "+910000000001",
        "Asha Iyer",
        25,
        &["vedic", "tarot"],
        &["hi", "en"],
    ),
    (
        "+910000000002",
        "Meera Joshi",
        20,
        &["numerology", "vedic"],
        &["en", "mr"],
    ),
    (
        "+910000000003",
        "Kabir Sen",
        30,
        &["palmistry", "vastu"],
        &["bn", "en"],
    ),
    ("+910000000004", "Leela Rao", 15, &["tarot"], &["ta", "en"]),
];

/// Adds the demo guides if missing and keeps them online.
pub async fn seed(state: &AppState) -> anyhow::Result<()> {
    for (phone, name, rate, skills, languages) in GUIDES {
        let id = match state.store.user_by_phone(phone, UserType::Guide).await? {
            Some(u) => u.id,
            None => {
                let guide = NewGuide {
                    phone: phone.into(),
                    name: name.into(),
                    rate_per_minute: rate,
                    skills: skills.iter().map(|s| s.to_string()).collect(),
                    languages: languages.iter().map(|s| s.to_string()).collect(),
                    available: true,
                };
                state
                    .store
                    .add_guide(guide, Timestamp::now().millis())
                    .await?
            }
        };
        state.store.set_guide_available(id, true).await?;
        state.hub.pin_online(id);
    }
    Ok(())
}
