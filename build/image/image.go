package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: distroless's "nonroot", which deploy/'s CCM
// Deployment names (runAsUser 65532) and the announcer DaemonSet
// overrides to uid 0 with only NET_RAW.
const (
	nonrootUID = 65532
	nonrootGID = 65532
)

// imageSpec is one image: one binary built for several platforms.
type imageSpec struct {
	name      string
	registry  string
	src       source
	platforms []platform
	// binaries are the built binaries, one per platform, in order.
	binaries []string
}

// written is what writeImage produced.
type written struct {
	// index is the digest of the multi-arch index: what a registry
	// shows for the tag after `crane push`.
	index v1.Hash
	// manifests are the per-platform image digests, in platform order.
	manifests []v1.Hash
	// layout and archive are the OCI layout directory and its tar.
	layout, archive string
}

// writeImage assembles the image and writes <out>/<name>/ (an OCI image
// layout whose index.json names the multi-arch index), <out>/<name>.oci.tar
// (the same layout as a tar) and <out>/<name>.digest (the index digest).
func writeImage(spec imageSpec, out string) (written, error) {
	base, err := baseLayer(spec.src.epoch)
	if err != nil {
		return written{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var res written
	for i, p := range spec.platforms {
		img, err := platformImage(spec, p, base, spec.binaries[i])
		if err != nil {
			return written{}, fmt.Errorf("%s: %w", p, err)
		}
		d, err := img.Digest()
		if err != nil {
			return written{}, err
		}
		res.manifests = append(res.manifests, d)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.variant()}},
		})
	}
	withAnn, ok := mutate.Annotations(idx, spec.annotations()).(v1.ImageIndex)
	if !ok {
		return written{}, fmt.Errorf("annotated index is not an index")
	}
	idx = withAnn
	if res.index, err = idx.Digest(); err != nil {
		return written{}, err
	}

	res.layout = filepath.Join(out, spec.name)
	if err := os.RemoveAll(res.layout); err != nil {
		return written{}, err
	}
	lp, err := layout.Write(res.layout, empty.Index)
	if err != nil {
		return written{}, err
	}
	// index.json names the one multi-arch index, so that `crane push
	// DIR REF` pushes it as it is, and oci-archive readers (skopeo,
	// podman, containerd) find it by its reference.
	ref := spec.registry + "/" + spec.name + ":" + spec.src.version
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": spec.src.version,
		"io.containerd.image.name":          ref,
	})); err != nil {
		return written{}, err
	}
	res.archive = res.layout + ".oci.tar"
	if err := writeArchive(res.layout, res.archive, spec.src.epoch); err != nil {
		return written{}, err
	}
	if err := os.WriteFile(res.layout+".digest", []byte(res.index.String()+"\n"), 0o644); err != nil {
		return written{}, err
	}
	return res, nil
}

// annotations describe the source, on the index and on every image
// config (as labels), in the OCI's own keys.
func (spec imageSpec) annotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    spec.name,
		"org.opencontainers.image.version":  spec.src.version,
		"org.opencontainers.image.revision": spec.src.commit,
		"org.opencontainers.image.created":  spec.src.epoch.Format(time.RFC3339),
		"org.opencontainers.image.source":   "https://github.com/cloud-provider-baremetal/cloud-provider-baremetal",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
}

// platformImage is the image of one platform: the shared base layer and
// a layer with the binary at /<name>, run as nonroot.
func platformImage(spec imageSpec, p platform, base v1.Layer, binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	binLayer, err := layer(spec.src.epoch, []entry{{name: spec.name, mode: 0o755, data: bin}})
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: spec.src.epoch}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Variant:      p.variant(),
		Created:      created,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", nonrootUID, nonrootGID),
			Entrypoint: []string{"/" + spec.name},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			WorkingDir: "/",
			Labels:     spec.annotations(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "build/image: /etc/passwd, /etc/group, /home/nonroot, /tmp",
		}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "build/image: /" + spec.name + " (go build -trimpath, CGO_ENABLED=0, " + p.String() + ")",
		}},
	)
}

// baseLayer is what a static Go binary needs around it, the same for
// every image and platform: users and groups (so the uid has a name and a
// home, as in distroless/static's nonroot), and /tmp. There is no CA
// bundle or tzdata: both binaries only talk to the API server (whose CA
// the ServiceAccount mount brings) and to BGP peers, and log in UTC.
func baseLayer(epoch time.Time) (v1.Layer, error) {
	return layer(epoch, []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: nonrootUID, gid: nonrootGID},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
	})
}

// entry is one file or (name ending in /) directory of a layer.
type entry struct {
	name     string
	mode     int64
	uid, gid int
	data     []byte
}

// layer makes a gzip-compressed OCI layer of entries. Entries are sorted
// by name, all dated epoch, with numeric owners only, in USTAR format,
// so the same entries always give the same bytes.
func layer(epoch time.Time, entries []entry) (v1.Layer, error) {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: epoch, Format: tar.FormatUSTAR,
		}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Compressed here, once, rather than by go-containerregistry (which
	// compresses again for every write): the gzip header carries no
	// name and no time, and compress/gzip of one Go release always
	// gives the same bytes.
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := z.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeArchive packs the layout directory dir into the tar file path:
// sorted entries, dated epoch, owned by root, modes 0644 and 0755.
func writeArchive(dir, path string, epoch time.Time) (err error) {
	var names []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		} else if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		names = append(names, rel)
		return nil
	}); err != nil {
		return err
	}
	slices.Sort(names)

	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	tw := tar.NewWriter(f)
	for _, name := range names {
		h := &tar.Header{Name: name, ModTime: epoch, Format: tar.FormatUSTAR}
		var data []byte
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		} else {
			if data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
				return err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
