//! The TypeScript types of what `DarkSwapWasm` takes and returns (config,
//! orders, peers, wallet, trades, events), written into the generated
//! `darkswap_wasm.d.ts` so the bindings' `Promise<Order>` and the like name
//! types that exist there.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");
