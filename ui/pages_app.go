package ui

import (
	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/ui/access"
)

// appPages registers the management pages.
func (s *Server) appPages(g *gin.RouterGroup) {
	s.page(g, "GET", "/", access.PermView, "/", s.dashboardPage)
	s.monitorPages(g)
	s.managePages(g)
}

// dashboardView is the dashboard's data.
type dashboardView struct {
	Report  *jobs.Report
	Problem string
	Jobs    []jobs.Job
}

func (s *Server) dashboardPage(c *gin.Context) {
	v := dashboardView{}
	rep, err := s.be().Protection(c.Request.Context())
	if err != nil {
		v.Problem = err.Error()
	}
	v.Report = rep
	v.Jobs = s.be().Jobs(jobs.JobFilter{Limit: 20})
	s.render(c, 0, "dashboard", "Dashboard", v)
}
