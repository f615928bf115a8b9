// The pod sandbox's PID 1 for containerd's sandbox_image (testenv/images.py): no dependencies.
module wpclone.dev/testenv/pause

go 1.22
