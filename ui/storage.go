package ui

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/store"
	"coffer.dev/coffer/ui/chart"
)

func (s *Server) storageState(c *gin.Context) {
	p, err := s.be().PoolState()
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// capacityAnswer is the pool's usage history with the forecast.
type capacityAnswer struct {
	Samples  any       `json:"samples"`
	Capacity int64     `json:"capacity_bytes"`
	Slope    float64   `json:"growth_bytes_per_day"`
	Full     time.Time `json:"full,omitzero"`
	DaysLeft *float64  `json:"days_left,omitempty"` // absent: not filling up
}

func (s *Server) capacity(c *gin.Context) {
	h, err := s.be().CapacityHistory()
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	p, err := s.be().PoolState()
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	var pts []chart.Point
	for _, x := range h {
		pts = append(pts, chart.Point{X: x.Time, Y: float64(x.Used)})
	}
	f := chart.Forecast(pts, float64(p.Size), time.Now())
	a := capacityAnswer{Samples: h, Capacity: p.Size, Slope: f.Slope}
	if h == nil {
		a.Samples = []any{}
	}
	if !f.Never {
		a.Full, a.DaysLeft = f.Full, &f.DaysLeft
	}
	c.JSON(http.StatusOK, a)
}

func (s *Server) verifyStore(c *gin.Context) {
	var req struct {
		Sample float64 `json:"sample"`
	}
	if c.Request.ContentLength != 0 && !decodeStrict(c, &req) {
		return
	}
	if req.Sample < 0 || req.Sample > 1 {
		fail(c, http.StatusBadRequest, "sample is a fraction from 0 to 1 (0 or 1: everything)")
		return
	}
	rep, err := s.be().VerifyStore(c.Request.Context(), req.Sample)
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

func (s *Server) collectGarbage(c *gin.Context) {
	var req struct {
		DryRun bool `json:"dry_run"`
	}
	if c.Request.ContentLength != 0 && !decodeStrict(c, &req) {
		return
	}
	st, err := s.be().CollectGarbage(c.Request.Context(), req.DryRun)
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) pointLock(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	t, err := s.be().PointLock(id)
	if err != nil {
		fail(c, lockStatus(err), "%v", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"point": id, "locked_until": t, "locked": time.Now().Before(t)})
}

func (s *Server) setPointLock(c *gin.Context) {
	id, ok := pointParam(c)
	if !ok {
		return
	}
	var req struct {
		Until time.Time `json:"until"`
	}
	if !decodeStrict(c, &req) {
		return
	}
	if !req.Until.After(time.Now()) {
		fail(c, http.StatusBadRequest, "until must be in the future (a lock can only be extended, never removed)")
		return
	}
	if err := s.be().LockPoint(id, req.Until); err != nil {
		fail(c, lockStatus(err), "%v", err)
		return
	}
	c.Set(ctxDetail, "retention lock until "+req.Until.UTC().Format(time.RFC3339))
	c.JSON(http.StatusOK, gin.H{"point": id, "locked_until": req.Until})
}

func lockStatus(err error) int {
	switch {
	case errors.Is(err, store.ErrNoPoint):
		return http.StatusNotFound
	case errors.Is(err, store.ErrLocked):
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}
