//! The provider the conformance check sends through: a local HTTP server that answers
//! every request with the answer it is set to, and counts them.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use axum::http::StatusCode;

/// What the stand-in answers: `--status` and `--answer`, or an answer of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// What the stand-in answers for the "a 500 is transient" check: an error body of
    /// its own, in the shape many providers use, so that a module that quotes the
    /// answer shows that it read this one (not the success given with `--answer`).
    pub fn internal_error() -> Answer {
        Answer {
            status: 500,
            body: r#"{"error": {"code": "internal_error", "message": "the conformance stand-in failed on purpose"}}"#
                .to_string(),
        }
    }
}

/// A running stand-in; stops with the runtime that runs it.
pub struct StandIn {
    /// `http://127.0.0.1:PORT`, what `{{server}}` in the blob becomes.
    pub url: String,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<AtomicUsize>,
}

impl StandIn {
    /// Listens on a free port of 127.0.0.1 and answers `answer` until told otherwise.
    pub async fn start(answer: Answer) -> std::io::Result<StandIn> {
        let current = Arc::new(Mutex::new(answer));
        let requests = Arc::new(AtomicUsize::new(0));
        let (answer, counted) = (current.clone(), requests.clone());
        let app = axum::Router::new().fallback(move || {
            let (answer, counted) = (answer.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let Answer { status, body } = answer.lock().expect("the answer's lock").clone();
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                (status, [("content-type", "application/json")], body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(StandIn {
            url,
            answer: current,
            requests,
        })
    }

    /// Answers `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("the answer's lock") = answer;
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
