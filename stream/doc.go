// Package stream is the WebRTC side of one isolated tab: it takes the JPEG
// frames of Chromium's screencast, encodes them to VP8 or H.264 (whichever
// the browser takes first of Config.Codecs) and sends them on a video track
// to the user's browser, and carries the tab's data channel.
//
// One Server per process owns the ICE sockets (one UDP port, one ICE-TCP
// port) and the pion API; each tab gets a Peer. The package does not import
// the rest of Glovebox: it exchanges plain values (JPEG bytes, times, byte
// messages).
package stream
