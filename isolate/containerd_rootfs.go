package isolate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// buildTemplate makes, or brings up to date, the template root of "host"
// mode at dir: a few kilobytes that every container shares read-only, with
// the host's /usr and what Chromium reads of /etc bound on top. It returns
// the hostBinds that exist on this host.
func buildTemplate(dir string, uid, gid int) ([]string, error) {
	var binds []string
	for _, src := range hostBinds {
		if _, err := os.Stat(src); err == nil {
			binds = append(binds, src)
		}
	}
	type entry struct {
		name     string
		mode     os.FileMode // a directory unless link or data is set
		link     string
		data     string
		file     bool // an empty file: a mount point for a file bind
		uid, gid int
	}
	entries := []entry{
		{name: ".", mode: 0o755},
		{name: "bin", link: "usr/bin"},
		{name: "sbin", link: "usr/sbin"},
		{name: "lib", link: "usr/lib"},
		{name: "lib64", link: "usr/lib64"},
		// Mount points of the binds, the kernel file systems and the
		// tmpfs. runc gives a tmpfs the mode of its mount point, so tmp
		// is 1777 and the home 0700, owned by the browser's user.
		{name: "usr", mode: 0o755},
		{name: "etc", mode: 0o755},
		{name: "var", mode: 0o755},
		{name: "var/cache", mode: 0o755},
		{name: "dev", mode: 0o755},
		{name: "proc", mode: 0o555},
		{name: "sys", mode: 0o555},
		{name: "run", mode: 0o755},
		{name: "tmp", mode: 0o1777},
		{name: "home", mode: 0o755},
		{name: "home/" + containerUser, mode: 0o700, uid: uid, gid: gid},
		{name: "etc/hosts", file: true, mode: 0o644},
		{name: "etc/chromium", mode: 0o755},
		{name: "etc/chromium/policies", mode: 0o755},
		{name: "etc/chromium/policies/managed", mode: 0o755},
		{name: containerPolicyFile[1:], file: true, mode: 0o644},
		{name: "etc/passwd", mode: 0o644, data: fmt.Sprintf(
			"root:x:0:0:root:/root:/usr/sbin/nologin\n"+
				"%s:x:%d:%d:Glovebox browser:%s:/usr/sbin/nologin\n"+
				"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			containerUser, uid, gid, containerHome)},
		{name: "etc/group", mode: 0o644, data: fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", containerUser, gid)},
		// Names resolve from /etc/hosts only: the egress proxy resolves
		// everything else.
		{name: "etc/nsswitch.conf", mode: 0o644, data: "passwd: files\ngroup: files\nhosts: files\n"},
	}
	for _, src := range binds {
		if fi, err := os.Stat(src); err == nil && !fi.IsDir() {
			entries = append(entries, entry{name: src[1:], file: true, mode: 0o644})
		} else {
			entries = append(entries, entry{name: src[1:], mode: 0o755})
		}
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.name)
		var err error
		switch {
		case e.link != "":
			if cur, lerr := os.Readlink(p); lerr == nil && cur == e.link {
				continue
			}
			os.RemoveAll(p)
			err = os.Symlink(e.link, p)
		case e.data != "":
			err = os.WriteFile(p, []byte(e.data), e.mode)
		case e.file:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_RDONLY, e.mode); err == nil {
				f.Close()
			}
		default:
			err = os.MkdirAll(p, e.mode)
		}
		if err == nil && e.link == "" {
			// MkdirAll and WriteFile leave the mode of what exists, and
			// the umask trims new ones.
			err = errors.Join(os.Chmod(p, e.mode), os.Lchown(p, e.uid, e.gid))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return binds, nil
}

// ensureImage finds the image ref in containerd, pulls it when it is not
// there and unpacks it for the default snapshotter. Every failure wraps
// ErrImage and names the reference.
func ensureImage(ctx context.Context, cl *client.Client, ref string, log *slog.Logger) (client.Image, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not an image reference: %w", ErrImage, ref, err)
	}
	name := named.String()
	img, err := cl.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		t0 := time.Now()
		log.Info("pulling the browser image", "image", name)
		img, err = cl.Pull(ctx, name, client.WithPullUnpack)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not in containerd and could not be pulled: %w", ErrImage, name, err)
		}
		log.Info("browser image pulled", "image", name, "duration", time.Since(t0).Round(time.Millisecond))
	} else if err != nil {
		return nil, fmt.Errorf("%w: look up %s: %w", ErrImage, name, err)
	}
	ok, err := img.IsUnpacked(ctx, defaults.DefaultSnapshotter)
	if err == nil && !ok {
		err = img.Unpack(ctx, defaults.DefaultSnapshotter)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: unpack %s: %w", ErrImage, name, err)
	}
	return img, nil
}
