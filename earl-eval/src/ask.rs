//! Asking a judge in rounds, shared by the RL verifier rewards ([`crate::verifier`]) and the evaluation judge
//! ([`crate::judge::viescore`]): every query of every item still without answers is sent, round after round, until
//! each item's replies all parse or the rounds run out. An item with an unparsable reply is asked all of its queries
//! again and its parsed replies of that round are dropped (EARL re-queries SC and PQ together, `rl/reward.py`). A
//! request that fails for good (after the client's own retries) ends its item at once with that error: the RL
//! rewards turn it into a batch error, the evaluation judge into a per-sample failure.
use crate::chat::{ChatClient, ChatError, ChatRequest};

/// How asking one item ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome<T> {
    /// Every query's reply parsed (in query order).
    Parsed(Vec<T>),
    /// Some reply still did not parse after the last round.
    Unparsed,
    /// A request failed for good.
    Failed(ChatError),
}

/// One item's outcome and the raw replies of its last round (query order; empty where a request failed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Asked<T> {
    /// How it ended.
    pub outcome: Outcome<T>,
    /// The replies of the last round asked.
    pub replies: Vec<String>,
    /// Rounds asked (0 for an item without queries).
    pub rounds: u32,
}

/// Asks `queries[i]` (item `i`'s requests; empty = nothing to ask, parsed at once) for at most `max_rounds` rounds;
/// `parse(q, reply)` reads the reply to query `q`. `who` names the asker in logs. With `stop_on_failure`, no round
/// follows one in which a request failed for good (the caller fails the whole batch anyway).
pub(crate) fn ask_rounds<T>(
    client: &ChatClient,
    who: &str,
    queries: &[Vec<ChatRequest>],
    max_rounds: u32,
    stop_on_failure: bool,
    parse: impl Fn(usize, &str) -> Option<T>,
) -> Vec<Asked<T>> {
    let mut asked: Vec<Asked<T>> = queries
        .iter()
        .map(|q| Asked {
            outcome: if q.is_empty() { Outcome::Parsed(Vec::new()) } else { Outcome::Unparsed },
            replies: Vec::new(),
            rounds: 0,
        })
        .collect();
    for round in 1..=max_rounds.max(1) {
        let pending: Vec<usize> =
            (0..queries.len()).filter(|&i| matches!(asked[i].outcome, Outcome::Unparsed)).collect();
        let failed = asked.iter().any(|a| matches!(a.outcome, Outcome::Failed(_)));
        if pending.is_empty() || (stop_on_failure && failed) {
            break;
        }
        if round > 1 {
            tracing::warn!(who, round, items = pending.len(), "asking the judge again");
        }
        let reqs: Vec<ChatRequest> = pending.iter().flat_map(|&i| queries[i].iter().cloned()).collect();
        let mut replies = client.complete_all(&reqs).into_iter();
        for &i in &pending {
            let item = &mut asked[i];
            item.rounds = round;
            item.replies.clear();
            let mut parsed = Vec::with_capacity(queries[i].len());
            let mut failed = None;
            for q in 0..queries[i].len() {
                match replies.next().unwrap_or_else(|| Ok(String::new())) {
                    Err(e) => {
                        failed.get_or_insert(e);
                        item.replies.push(String::new());
                    }
                    Ok(reply) => {
                        match parse(q, &reply) {
                            Some(v) => parsed.push(v),
                            None => {
                                let head: String = reply.chars().take(160).collect();
                                tracing::debug!(who, item = i, query = q, reply = %head, "unparsable judge reply");
                            }
                        }
                        item.replies.push(reply);
                    }
                }
            }
            item.outcome = match failed {
                Some(e) => Outcome::Failed(e),
                None if parsed.len() == queries[i].len() => Outcome::Parsed(parsed),
                None => Outcome::Unparsed,
            };
        }
    }
    asked
}
