//! What every rate-limit store must do: count racing hits exactly, report the window's end,
//! peek without counting, and start a new window once the old one ends.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_domain::rate_limit::RateLimitStore;

pub async fn rate_limit_contract(store: Arc<dyn RateLimitStore>) {
    let window = Duration::from_millis(600);
    assert_eq!(store.peek("k").await.unwrap(), None, "no window before the first hit");
    let hits: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.hit("k", window).await.unwrap().used })
        })
        .collect();
    let mut counts = Vec::new();
    for hit in hits {
        counts.push(hit.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u32>>(), "racing hits are each counted once");
    let peeked = store.peek("k").await.unwrap().expect("an open window");
    assert_eq!(peeked.used, 50, "peeking does not count");
    assert!(peeked.resets_in <= window && peeked.resets_in > Duration::ZERO, "{:?}", peeked.resets_in);
    assert_eq!(store.hit("other", window).await.unwrap().used, 1, "keys are counted apart");
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(store.peek("k").await.unwrap(), None, "an ended window is gone");
    assert_eq!(store.hit("k", window).await.unwrap().used, 1, "a new window starts from one");
}
