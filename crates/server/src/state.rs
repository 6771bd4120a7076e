//! The consultation state machine, as a pure function: who may do what in which state.
//!
//! ```text
//! requested ──accept──▶ accepted ──both joined──▶ in_progress ──complete──▶ completed
//!     │                     └────────────complete──────────────────────────▲
//!     └──cancel / reject / timeout──▶ cancelled
//! ```

use crate::error::{Error, Result};
use tara_protocol::consultations::{ConsultationEvent, ConsultationStatus, EndedBy};

/// `end_reason` of a consultation the server ended because the balance ran out.
pub const BALANCE_EXHAUSTED: &str = "balance_exhausted";
/// `end_reason` of a consultation the server ended because nobody was active in it.
pub const INACTIVE: &str = "inactive";

/// Something a party (or the server) does to a consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The guide says yes.
    Accept,
    /// The guide says no.
    Reject {
        /// Why, optional.
        reason: Option<String>,
    },
    /// The customer withdraws the request.
    Cancel,
    /// Nobody answered in time.
    Timeout,
    /// A party opens the chat.
    Join,
    /// A party ends the consultation.
    Complete {
        /// Why, optional.
        reason: Option<String>,
    },
    /// The customer's balance ran out: the server ends it.
    Exhaust,
    /// Nobody sent, read or typed for `quiet_ms`: the server ends it, billed to the last activity.
    Inactive {
        /// How long it must have been quiet; the store refuses if it was not.
        quiet_ms: i64,
    },
}

/// Who is acting, relative to the consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The consultation's customer.
    Customer,
    /// The consultation's guide.
    Guide,
    /// The server.
    System,
}

impl Role {
    fn ended_by(self) -> EndedBy {
        match self {
            Role::Customer => EndedBy::Customer,
            Role::Guide => EndedBy::Guide,
            Role::System => EndedBy::System,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Role::Customer => "the customer",
            Role::Guide => "the guide",
            Role::System => "Tara",
        }
    }
}

/// What a permitted action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The new status (None: unchanged, as for a join that does not start it yet).
    pub to: Option<ConsultationStatus>,
    /// The event to tell both parties.
    pub event: Option<ConsultationEvent>,
    /// Who ended it, for terminal states.
    pub ended_by: Option<EndedBy>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The system message that records it in the history.
    pub system_text: Option<String>,
}

impl Decision {
    fn to(status: ConsultationStatus, event: ConsultationEvent) -> Self {
        Self {
            to: Some(status),
            event: Some(event),
            ended_by: None,
            end_reason: None,
            system_text: None,
        }
    }
}

/// Decides an action. `both_joined` says whether, counting this action, both parties have
/// joined (only read for `Join`).
pub fn decide(
    status: ConsultationStatus,
    action: &Action,
    role: Role,
    both_joined: bool,
) -> Result<Decision> {
    use ConsultationStatus as S;
    let wrong_state = |what: &str| {
        Error::invalid_state(format!(
            "cannot {what} a consultation that is {}",
            status.as_str()
        ))
        .with_details(serde_json::json!({ "status": status.as_str() }))
    };
    match action {
        Action::Accept => {
            require(role, Role::Guide, "only the guide can accept")?;
            if status != S::Requested {
                return Err(wrong_state("accept"));
            }
            let mut d = Decision::to(S::Accepted, ConsultationEvent::Accepted);
            d.system_text = Some("The guide accepted the consultation.".into());
            Ok(d)
        }
        Action::Reject { reason } => {
            require(role, Role::Guide, "only the guide can reject")?;
            if status != S::Requested {
                return Err(wrong_state("reject"));
            }
            let mut d = Decision::to(S::Cancelled, ConsultationEvent::Rejected);
            d.ended_by = Some(EndedBy::Guide);
            d.end_reason = Some(reason.clone().unwrap_or_else(|| "rejected".into()));
            Ok(d)
        }
        Action::Cancel => {
            require(
                role,
                Role::Customer,
                "only the customer can cancel a request",
            )?;
            if status != S::Requested {
                return Err(wrong_state("cancel"));
            }
            let mut d = Decision::to(S::Cancelled, ConsultationEvent::Cancelled);
            d.ended_by = Some(EndedBy::Customer);
            d.end_reason = Some("cancelled".into());
            Ok(d)
        }
        Action::Timeout => {
            require(role, Role::System, "only the server times requests out")?;
            if status != S::Requested {
                return Err(wrong_state("time out"));
            }
            let mut d = Decision::to(S::Cancelled, ConsultationEvent::Cancelled);
            d.ended_by = Some(EndedBy::System);
            d.end_reason = Some("timeout".into());
            Ok(d)
        }
        Action::Join => {
            if role == Role::System {
                return Err(Error::forbidden("the server does not join"));
            }
            match status {
                S::Accepted if both_joined => {
                    let mut d = Decision::to(S::InProgress, ConsultationEvent::Started);
                    d.system_text = Some("The consultation has started.".into());
                    Ok(d)
                }
                S::Accepted | S::InProgress => Ok(Decision {
                    to: None,
                    event: None,
                    ended_by: None,
                    end_reason: None,
                    system_text: None,
                }),
                _ => Err(wrong_state("join")),
            }
        }
        Action::Complete { reason } => {
            if !matches!(status, S::Accepted | S::InProgress) {
                return Err(wrong_state("complete"));
            }
            let mut d = Decision::to(S::Completed, ConsultationEvent::Completed);
            d.ended_by = Some(role.ended_by());
            d.end_reason = Some(reason.clone().unwrap_or_else(|| "completed".into()));
            d.system_text = Some(format!("The consultation was ended by {}.", role.noun()));
            Ok(d)
        }
        Action::Exhaust => {
            require(
                role,
                Role::System,
                "only the server ends a consultation for balance",
            )?;
            if status != S::InProgress {
                return Err(wrong_state("end for balance"));
            }
            let mut d = Decision::to(S::Completed, ConsultationEvent::Completed);
            d.ended_by = Some(EndedBy::System);
            d.end_reason = Some(BALANCE_EXHAUSTED.into());
            d.system_text = Some("The consultation ended: the customer's balance ran out.".into());
            Ok(d)
        }
        Action::Inactive { .. } => {
            require(
                role,
                Role::System,
                "only the server ends a quiet consultation",
            )?;
            if status != S::InProgress {
                return Err(wrong_state("end for inactivity"));
            }
            let mut d = Decision::to(S::Completed, ConsultationEvent::Completed);
            d.ended_by = Some(EndedBy::System);
            d.end_reason = Some(INACTIVE.into());
            d.system_text = Some(
                "The consultation ended: nobody wrote for a while. It is charged up to the last message."
                    .into(),
            );
            Ok(d)
        }
    }
}

fn require(role: Role, wanted: Role, message: &str) -> Result<()> {
    if role == wanted {
        Ok(())
    } else {
        Err(Error::forbidden(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tara_protocol::ErrorCode;
    use ConsultationStatus as S;

    fn code(r: Result<Decision>) -> ErrorCode {
        r.expect_err("should be refused").code
    }

    #[test]
    fn a_request_is_accepted_only_by_the_guide_and_only_once() {
        let d = decide(S::Requested, &Action::Accept, Role::Guide, false).expect("accept");
        assert_eq!(d.to, Some(S::Accepted));
        assert_eq!(d.event, Some(ConsultationEvent::Accepted));
        assert!(d.system_text.is_some());
        assert_eq!(
            code(decide(S::Requested, &Action::Accept, Role::Customer, false)),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(decide(S::Accepted, &Action::Accept, Role::Guide, false)),
            ErrorCode::InvalidState
        );
        assert_eq!(
            code(decide(S::Cancelled, &Action::Accept, Role::Guide, false)),
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn rejecting_cancelling_and_timing_out_end_a_request() {
        let r = decide(
            S::Requested,
            &Action::Reject { reason: None },
            Role::Guide,
            false,
        )
        .expect("reject");
        assert_eq!(
            (r.to, r.event, r.ended_by),
            (
                Some(S::Cancelled),
                Some(ConsultationEvent::Rejected),
                Some(EndedBy::Guide)
            )
        );
        let c = decide(S::Requested, &Action::Cancel, Role::Customer, false).expect("cancel");
        assert_eq!(
            (c.to, c.ended_by),
            (Some(S::Cancelled), Some(EndedBy::Customer))
        );
        let t = decide(S::Requested, &Action::Timeout, Role::System, false).expect("timeout");
        assert_eq!(t.end_reason.as_deref(), Some("timeout"));
        assert_eq!(
            code(decide(S::Accepted, &Action::Cancel, Role::Customer, false)),
            ErrorCode::InvalidState
        );
        assert_eq!(
            code(decide(S::Requested, &Action::Cancel, Role::Guide, false)),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(decide(S::Accepted, &Action::Timeout, Role::System, false)),
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn the_second_join_starts_the_consultation() {
        let first = decide(S::Accepted, &Action::Join, Role::Customer, false).expect("join");
        assert_eq!(first.to, None);
        let second = decide(S::Accepted, &Action::Join, Role::Guide, true).expect("join");
        assert_eq!(second.to, Some(S::InProgress));
        assert_eq!(second.event, Some(ConsultationEvent::Started));
        let again = decide(S::InProgress, &Action::Join, Role::Guide, true).expect("rejoin");
        assert_eq!(again.to, None, "joining again changes nothing");
        assert_eq!(
            code(decide(S::Requested, &Action::Join, Role::Customer, false)),
            ErrorCode::InvalidState
        );
        assert_eq!(
            code(decide(S::Completed, &Action::Join, Role::Customer, true)),
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn either_party_completes_and_is_named() {
        let d = decide(
            S::InProgress,
            &Action::Complete { reason: None },
            Role::Guide,
            true,
        )
        .expect("complete");
        assert_eq!(
            (d.to, d.ended_by),
            (Some(S::Completed), Some(EndedBy::Guide))
        );
        assert!(d
            .system_text
            .as_deref()
            .unwrap_or_default()
            .contains("guide"));
        let early = decide(
            S::Accepted,
            &Action::Complete {
                reason: Some("bye".into()),
            },
            Role::Customer,
            false,
        )
        .expect("complete before start");
        assert_eq!(early.end_reason.as_deref(), Some("bye"));
        assert_eq!(
            code(decide(
                S::Requested,
                &Action::Complete { reason: None },
                Role::Customer,
                false
            )),
            ErrorCode::InvalidState
        );
        assert_eq!(
            code(decide(
                S::Completed,
                &Action::Complete { reason: None },
                Role::Guide,
                false
            )),
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn only_the_server_ends_a_running_consultation_for_balance() {
        let d = decide(S::InProgress, &Action::Exhaust, Role::System, true).expect("exhaust");
        assert_eq!(
            (d.to, d.ended_by, d.end_reason.as_deref()),
            (
                Some(S::Completed),
                Some(EndedBy::System),
                Some(BALANCE_EXHAUSTED)
            )
        );
        assert!(d.system_text.unwrap_or_default().contains("balance"));
        assert_eq!(
            code(decide(
                S::InProgress,
                &Action::Exhaust,
                Role::Customer,
                true
            )),
            ErrorCode::Forbidden
        );
        for s in [S::Requested, S::Accepted, S::Completed, S::Cancelled] {
            assert_eq!(
                code(decide(s, &Action::Exhaust, Role::System, true)),
                ErrorCode::InvalidState,
                "{s:?}"
            );
        }
    }
}
