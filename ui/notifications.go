package ui

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"coffer.dev/coffer/appliance/notify"
)

func (s *Server) notifications(c *gin.Context) {
	cfg, err := s.be().Notifications()
	if err != nil {
		fail(c, http.StatusInternalServerError, "%v", err)
		return
	}
	c.JSON(http.StatusOK, cfg)
}

func (s *Server) setNotifications(c *gin.Context) {
	var cfg notify.Config
	if !decodeStrict(c, &cfg) {
		return
	}
	if err := s.be().SetNotifications(cfg); err != nil {
		fail(c, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	c.Set(ctxDetail, "notification settings changed")
	shown, _ := s.be().Notifications()
	c.JSON(http.StatusOK, shown)
}

func (s *Server) testNotifications(c *gin.Context) {
	if err := s.be().TestNotifications(c.Request.Context()); err != nil {
		fail(c, http.StatusBadGateway, "%v", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sent": true})
}
