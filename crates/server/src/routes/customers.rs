//! `/api/v1/customers/{id}/profile(s)`: birth details, readable and writable only by their owner.

use super::{Json, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use axum::extract::State;
use axum::http::StatusCode;
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput, CustomerProfileList};
use tara_protocol::{Timestamp, UserId};

fn owner(me: &AuthUser, customer_id: i64) -> Result<UserId> {
    if me.user_id.0 != customer_id {
        return Err(Error::forbidden("these are someone else's profiles"));
    }
    Ok(me.user_id)
}

/// Checks the fields a reading needs; trims them in place.
pub fn validate(p: &mut CustomerProfileInput) -> Result<()> {
    for (name, value, max) in [
        ("name", &mut p.name, 100),
        ("birth_city", &mut p.birth_city, 100),
        ("birth_country", &mut p.birth_country, 100),
        ("preferred_language", &mut p.preferred_language, 50),
    ] {
        *value = value.trim().to_owned();
        let n = value.chars().count();
        if n == 0 || n > max {
            return Err(Error::validation(format!(
                "{name} must be 1 to {max} characters"
            )));
        }
    }
    let Ok(born) = chrono::NaiveDate::parse_from_str(&p.date_of_birth, "%Y-%m-%d") else {
        return Err(Error::validation("date_of_birth must look like 1990-01-01"));
    };
    // A day of slack for time zones ahead of UTC.
    if born > chrono::Utc::now().date_naive() + chrono::Days::new(1) {
        return Err(Error::validation("date_of_birth cannot be in the future"));
    }
    let time_ok = chrono::NaiveTime::parse_from_str(&p.time_of_birth, "%H:%M:%S").is_ok()
        || chrono::NaiveTime::parse_from_str(&p.time_of_birth, "%H:%M").is_ok();
    if !time_ok {
        return Err(Error::validation("time_of_birth must look like 10:30:00"));
    }
    for (name, value) in [("zodiac_sign", &p.zodiac_sign), ("gender", &p.gender)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 30) {
            return Err(Error::validation(format!("{name} is too long")));
        }
    }
    Ok(())
}

pub async fn primary(
    State(app): State<AppState>,
    me: AuthUser,
    Path(customer_id): Path<i64>,
) -> Result<axum::Json<CustomerProfile>> {
    let id = owner(&me, customer_id)?;
    let profiles = app.store.profiles(id).await?;
    profiles
        .into_iter()
        .find(|p| p.is_primary)
        .map(axum::Json)
        .ok_or_else(|| Error::not_found("no profile yet"))
}

pub async fn save_primary(
    State(app): State<AppState>,
    me: AuthUser,
    Path(customer_id): Path<i64>,
    Json(mut input): Json<CustomerProfileInput>,
) -> Result<axum::Json<CustomerProfile>> {
    let id = owner(&me, customer_id)?;
    validate(&mut input)?;
    Ok(axum::Json(
        app.store
            .save_primary_profile(id, input, Timestamp::now().millis())
            .await?,
    ))
}

pub async fn list(
    State(app): State<AppState>,
    me: AuthUser,
    Path(customer_id): Path<i64>,
) -> Result<axum::Json<CustomerProfileList>> {
    let id = owner(&me, customer_id)?;
    Ok(axum::Json(CustomerProfileList {
        profiles: app.store.profiles(id).await?,
    }))
}

pub async fn add(
    State(app): State<AppState>,
    me: AuthUser,
    Path(customer_id): Path<i64>,
    Json(mut input): Json<CustomerProfileInput>,
) -> Result<(StatusCode, axum::Json<CustomerProfile>)> {
    let id = owner(&me, customer_id)?;
    validate(&mut input)?;
    let p = app
        .store
        .add_profile(id, input, Timestamp::now().millis())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(p)))
}
