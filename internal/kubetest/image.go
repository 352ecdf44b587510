package kubetest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// File is one entry of an image's single layer.
type File struct {
	Path string // in the image, without the leading "/"
	Mode int64  // permission bits; a directory when Dir
	Dir  bool
	Data []byte // contents, unless Src names a host file or tree
	Src  string // a host file, or a host directory copied whole
	Link string // a symlink's target
}

// ImageTar writes an OCI image archive (oci-layout, index.json, blobs) of
// one uncompressed layer with files, named name (such as
// "glovebox.test/pause:1"), with entrypoint, to a file of the test and
// returns its path: what `ctr images import` takes.
func ImageTar(t testing.TB, name string, entrypoint []string, files []File) string {
	t.Helper()
	dir := t.TempDir()
	layerPath := filepath.Join(dir, "layer.tar")
	lf, err := os.Create(layerPath)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(lf, h))
	seen := map[string]bool{}
	for _, f := range files {
		if err := addFile(tw, f, seen); err != nil {
			t.Fatalf("image %s: %s: %v", name, f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	layerDigest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	st, _ := os.Stat(layerPath)

	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint, "Env": []string{"PATH=/usr/local/bin:/usr/bin:/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	cfgDigest := digest(cfg)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": st.Size()}},
	})
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
		}},
	})

	out := filepath.Join(dir, "image.tar")
	of, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	ow := tar.NewWriter(of)
	put := func(name string, b []byte) {
		if err := ow.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		ow.Write(b)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	put("blobs/sha256/"+strings.TrimPrefix(cfgDigest, "sha256:"), cfg)
	put("blobs/sha256/"+strings.TrimPrefix(digest(manifest), "sha256:"), manifest)
	lr, err := os.Open(layerPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := ow.WriteHeader(&tar.Header{Name: "blobs/sha256/" + strings.TrimPrefix(layerDigest, "sha256:"), Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(ow, lr); err != nil {
		t.Fatal(err)
	}
	lr.Close()
	os.Remove(layerPath)
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	if err := of.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// addFile writes f (and, for a tree, everything under it) with its parent
// directories first.
func addFile(tw *tar.Writer, f File, seen map[string]bool) error {
	f.Path = strings.TrimPrefix(f.Path, "/")
	parents := func(p string) error {
		var dirs []string
		for d := filepath.Dir(p); d != "." && d != "/"; d = filepath.Dir(d) {
			dirs = append(dirs, d)
		}
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) < len(dirs[j]) })
		for _, d := range dirs {
			if !seen[d] {
				seen[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := parents(f.Path); err != nil {
		return err
	}
	if f.Src != "" {
		info, err := os.Stat(f.Src)
		if err != nil {
			return err
		}
		if info.IsDir() {
			return filepath.WalkDir(f.Src, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(f.Src, p)
				name := filepath.Join(f.Path, rel)
				if seen[name] {
					return nil
				}
				seen[name] = true
				return addHost(tw, p, name)
			})
		}
		seen[f.Path] = true
		return addHost(tw, f.Src, f.Path)
	}
	if seen[f.Path] {
		return nil
	}
	seen[f.Path] = true
	switch {
	case f.Dir:
		return tw.WriteHeader(&tar.Header{Name: f.Path + "/", Mode: f.Mode, Typeflag: tar.TypeDir})
	case f.Link != "":
		return tw.WriteHeader(&tar.Header{Name: f.Path, Linkname: f.Link, Mode: 0o777, Typeflag: tar.TypeSymlink})
	}
	if err := tw.WriteHeader(&tar.Header{Name: f.Path, Mode: f.Mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(f.Data)
	return err
}

// addHost writes the host file p (a file, directory or symlink) as name.
func addHost(tw *tar.Writer, p, name string) error {
	info, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = name, 0, 0, "", ""
	if info.IsDir() {
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
