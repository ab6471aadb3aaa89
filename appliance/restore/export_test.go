package restore

import "io"

// SetUploadWrapper lets tests interfere with the disk uploads; nil undoes it.
func SetUploadWrapper(f func(disk string, r io.Reader) io.Reader) { wrapUpload = f }
