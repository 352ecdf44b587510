package console

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Recordings are the files of recording.dir (and its sub-directories)
// that a browser plays: WebM and Matroska. They are read through an
// os.Root, so that no name (.., an absolute path, a symbolic link out of
// the directory) reaches a file outside it.

var recordingTypes = map[string]string{".webm": "video/webm", ".mkv": "video/x-matroska"}

// maxRecordingsListed bounds the list, newest first.
const maxRecordingsListed = 1000

type recordingJSON struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

func (c *Console) listRecordings(w http.ResponseWriter, r *http.Request, a admin) {
	if c.recDir == "" {
		writeJSON(w, http.StatusOK, map[string]any{"recordings": []recordingJSON{}, "configured": false})
		return
	}
	root, err := os.OpenRoot(c.recDir)
	if err != nil {
		c.log.Warn("recording.dir cannot be read", "dir", c.recDir, "err", err)
		writeJSON(w, http.StatusOK, map[string]any{"recordings": []recordingJSON{}, "configured": true,
			"error": "recording.dir cannot be read: " + errors.Unwrap(err).Error()})
		return
	}
	defer root.Close()
	var list []recordingJSON
	fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() || recordingTypes[strings.ToLower(path.Ext(p))] == "" {
			return nil
		}
		if info, err := d.Info(); err == nil {
			list = append(list, recordingJSON{Name: p, Size: info.Size(), Modified: info.ModTime().UTC()})
		}
		return nil
	})
	slices.SortFunc(list, func(x, y recordingJSON) int { return y.Modified.Compare(x.Modified) })
	if len(list) > maxRecordingsListed {
		list = list[:maxRecordingsListed]
	}
	if list == nil {
		list = []recordingJSON{}
	}
	c.note(a, r, "list_recordings", "", "", http.StatusOK, true)
	writeJSON(w, http.StatusOK, map[string]any{"recordings": list, "configured": true})
}

// playRecording serves one recording, with ranges (the video element
// seeks with them).
func (c *Console) playRecording(w http.ResponseWriter, r *http.Request, a admin) {
	name := r.PathValue("name")
	typ := recordingTypes[strings.ToLower(path.Ext(name))]
	if c.recDir == "" || typ == "" || !fs.ValidPath(name) || name == "." {
		c.note(a, r, "play_recording", "", name, http.StatusNotFound, true)
		http.Error(w, "No such recording.", http.StatusNotFound)
		return
	}
	root, err := os.OpenRoot(c.recDir)
	if err != nil {
		http.Error(w, "No such recording.", http.StatusNotFound)
		return
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		c.note(a, r, "play_recording", "", name, http.StatusNotFound, true)
		http.Error(w, "No such recording.", http.StatusNotFound)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		c.note(a, r, "play_recording", "", name, http.StatusNotFound, true)
		http.Error(w, "No such recording.", http.StatusNotFound)
		return
	}
	c.note(a, r, "play_recording", "", name, http.StatusOK, true)
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Content-Disposition", "inline; filename*=UTF-8''"+url.PathEscape(path.Base(name)))
	http.ServeContent(w, r, name, info.ModTime(), f)
}
