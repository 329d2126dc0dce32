"""The console's view model, without Textual: an immutable `snapshot` per poll with its table
`rows`, `events`, `rates`, kept data of lost hosts (`freshness`), detail-screen content
(`details`) and the words and tones every status is shown with (`present`).

Built by the console's poll worker, off the UI thread. May import `core`; never `poll`, `ops`,
the front ends, or Textual.
"""
