DROP INDEX "volume_attachments_instance_idx";--> statement-breakpoint
CREATE INDEX "volume_attachments_instance_project_idx" ON "volume_attachments" USING btree ("instance_id","project_id");