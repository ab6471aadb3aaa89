// Package app is the appliance put together: its state directory (the
// store and its key, the encrypted secrets, the vCenter connection
// settings, the job engine's state) and the wiring between them. The CLI,
// the demo and the server use it; it holds no global state.
package app
