//go:build !unix

package publish

// nonBlock: systems without FIFOs in the file system need no flag.
const nonBlock = 0
