// Package tests holds the end-to-end tests that cross folders: the coffer
// binary against real file-system images made with Debian's tools, crash
// loops with kill -9, and (in later issues) the vSphere simulator, QEMU
// boots, tgt tape libraries, swtpm and a browser.
package tests
