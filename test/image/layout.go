package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// OCI media types this package reads.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is a descriptor's platform.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// Index is an OCI image index (also the layout's index.json).
type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []Descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Config is the part of an OCI image configuration the tests check.
type Config struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Variant      string    `json:"variant,omitempty"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

// Layout is an OCI image layout directory as build/image writes it:
// index.json names one multi-arch index.
type Layout struct {
	Dir string
}

// Blob reads the blob of digest d and checks that its content has that
// digest.
func (l Layout) Blob(d string) ([]byte, error) {
	alg, h, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" || len(h) != 64 || strings.ContainsAny(h, "/.") {
		return nil, fmt.Errorf("digest %q: not sha256:<64 hex>", d)
	}
	b, err := os.ReadFile(filepath.Join(l.Dir, "blobs", alg, h))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != h {
		return nil, fmt.Errorf("blob %s has digest sha256:%s", d, got)
	}
	return b, nil
}

// readJSON reads the blob of desc as JSON into v, checking its media
// type and size.
func (l Layout) readJSON(desc Descriptor, mediaType string, v any) error {
	if desc.MediaType != mediaType {
		return fmt.Errorf("%s: media type %q, want %q", desc.Digest, desc.MediaType, mediaType)
	}
	b, err := l.Blob(desc.Digest)
	if err != nil {
		return err
	}
	if int64(len(b)) != desc.Size {
		return fmt.Errorf("%s: %d bytes, descriptor says %d", desc.Digest, len(b), desc.Size)
	}
	return json.Unmarshal(b, v)
}

// Top returns the descriptor of the multi-arch index that index.json
// names.
func (l Layout) Top() (Descriptor, error) {
	b, err := os.ReadFile(filepath.Join(l.Dir, "index.json"))
	if err != nil {
		return Descriptor{}, err
	}
	var top Index
	if err := json.Unmarshal(b, &top); err != nil {
		return Descriptor{}, fmt.Errorf("index.json: %w", err)
	}
	if len(top.Manifests) != 1 {
		return Descriptor{}, fmt.Errorf("index.json names %d manifests, want the one multi-arch index", len(top.Manifests))
	}
	return top.Manifests[0], nil
}

// Index returns the multi-arch index.
func (l Layout) Index() (Index, error) {
	top, err := l.Top()
	if err != nil {
		return Index{}, err
	}
	var idx Index
	return idx, l.readJSON(top, MediaTypeIndex, &idx)
}

// Image is one platform's image of a layout.
type Image struct {
	Layout     Layout
	Descriptor Descriptor
	Manifest   Manifest
	Config     Config
}

// Image returns the image for os/arch.
func (l Layout) Image(osName, arch string) (*Image, error) {
	idx, err := l.Index()
	if err != nil {
		return nil, err
	}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS != osName || d.Platform.Architecture != arch {
			continue
		}
		img := &Image{Layout: l, Descriptor: d}
		if err := l.readJSON(d, MediaTypeManifest, &img.Manifest); err != nil {
			return nil, err
		}
		if err := l.readJSON(img.Manifest.Config, MediaTypeConfig, &img.Config); err != nil {
			return nil, err
		}
		return img, nil
	}
	return nil, fmt.Errorf("%s: no image for %s/%s", l.Dir, osName, arch)
}

// Entry is one tar entry of a layer.
type Entry struct {
	Header *tar.Header
	Data   []byte
}

// Layer reads layer i: its entries in order. It checks the layer's diff
// ID (the digest of the uncompressed tar) against the config.
func (img *Image) Layer(i int) ([]Entry, error) {
	desc := img.Manifest.Layers[i]
	if desc.MediaType != MediaTypeLayer {
		return nil, fmt.Errorf("layer %d: media type %q, want %q", i, desc.MediaType, MediaTypeLayer)
	}
	b, err := img.Layout.Blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", i, err)
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, h))
	var entries []Entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %s: %w", i, hdr.Name, err)
		}
		entries = append(entries, Entry{Header: hdr, Data: data})
	}
	// The tar's end-of-archive padding counts for the diff ID too.
	if _, err := io.Copy(h, zr); err != nil {
		return nil, fmt.Errorf("layer %d: %w", i, err)
	}
	if len(img.Config.RootFS.DiffIDs) <= i {
		return nil, fmt.Errorf("layer %d: no diff ID in the config", i)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != img.Config.RootFS.DiffIDs[i] {
		return nil, fmt.Errorf("layer %d: diff ID %s, config says %s", i, got, img.Config.RootFS.DiffIDs[i])
	}
	return entries, nil
}

// Unpack writes the image's root filesystem under dir, layer after
// layer, with the owners and modes of the layers (as a container runtime
// does). It handles what build/image writes: directories and regular
// files; anything else is an error.
func (img *Image) Unpack(dir string) error {
	for i := range img.Manifest.Layers {
		entries, err := img.Layer(i)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := path.Clean(e.Header.Name)
			if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || strings.HasPrefix(path.Base(name), ".wh.") {
				return fmt.Errorf("layer %d: entry %q not supported", i, e.Header.Name)
			}
			p := filepath.Join(dir, filepath.FromSlash(name))
			mode := os.FileMode(e.Header.Mode & 0o777)
			if e.Header.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			switch e.Header.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(p, 0o755); err != nil {
					return err
				}
			case tar.TypeReg:
				if err := os.WriteFile(p, e.Data, 0o600); err != nil {
					return err
				}
			default:
				return fmt.Errorf("layer %d: entry %q has type %q", i, e.Header.Name, e.Header.Typeflag)
			}
			if err := os.Lchown(p, e.Header.Uid, e.Header.Gid); err != nil {
				return err
			}
			// After chown, which clears set-id bits.
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		}
	}
	return nil
}
