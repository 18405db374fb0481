//! The wasm host for raftkv (a whole simulated cluster in a browser tab): not built yet, see issue 6.
